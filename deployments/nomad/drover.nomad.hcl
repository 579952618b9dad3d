# drover as a Nomad job: a "server" group (webhooks, API, slugs) and a
# "worker" group (the Temporal worker), scaled independently. They share one
# Temporal namespace, one PostgreSQL database and one slug bucket, so neither
# keeps state in its allocation. HCL2, Nomad 1.6 or newer.
#
#   nomad job run -var 'artifact=https://…/drover_linux_amd64.tar.gz' \
#     -var temporal_address=temporal.example.com:7233 \
#     -var 'slug_store=s3://drover-slugs?region=eu-west-1' \
#     -var public_url=https://drover.example.com \
#     -var config=/etc/drover/drover.yaml deployments/nomad/drover.nomad.hcl
#
# README.md beside this file covers secrets, the ACL policy and upgrades.

variable "artifact" {
  description = "URL of a release tarball with the drover binary at its root, fetched by the exec driver. Append ?checksum=sha256:<hex> so a changed file is refused. Ignored when image is set."
  type        = string
  default     = ""
}

variable "image" {
  description = "A container image with drover on its PATH. Set it to run drover with the docker driver instead of exec + artifact."
  type        = string
  default     = ""
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "node_pool" {
  description = "Node pool drover's own allocations run in, apart from the apps it deploys if you like."
  type        = string
  default     = "default"
}

variable "server_count" {
  type    = number
  default = 2
}

variable "worker_count" {
  type    = number
  default = 2
}

variable "config" {
  description = "drover.yaml: its content (several lines), or a path to it (one line), which the nomad CLI reads relative to this file's directory when it submits the job."
  type        = string
}

variable "temporal_address" {
  description = "host:port of the Temporal frontend, or of a Temporal Cloud namespace endpoint."
  type        = string
}

variable "temporal_namespace" {
  type    = string
  default = "default"
}

variable "slug_store" {
  description = "DROVER_SLUG_STORE, e.g. s3://bucket?endpoint=https://minio.example.com. Every replica must see the same slugs, so no filesystem store here."
  type        = string
}

variable "public_url" {
  description = "DROVER_PUBLIC_URL: where drover's servers are reached (the ingress in front of the drover service). Nomad clients fetch slugs from it and GitHub links to it, so a listen address will not do."
  type        = string
}

variable "secrets_path" {
  description = "Nomad Variables path holding drover's secrets. A job reads nomad/jobs/<job> with no ACL policy at all; another path needs a policy granting it."
  type        = string
  default     = "nomad/jobs/drover"
}

variable "nomad_token_from_identity" {
  description = "Give each task NOMAD_TOKEN from its workload identity instead of from Nomad Variables. Nomad 1.6 refuses to register jobs with that token, so only on 1.7 or newer; see README.md."
  type        = bool
  default     = false
}

variable "service_tags" {
  description = "Tags on the drover service, for the team's ingress."
  type        = list(string)
  default     = []
}

variable "server_resources" {
  type    = object({ cpu = number, memory = number })
  default = { cpu = 500, memory = 256 }
}

variable "worker_resources" {
  type    = object({ cpu = number, memory = number })
  default = { cpu = 500, memory = 512 }
}

locals {
  # A path is one line; drover.yaml content is never one line.
  config = length(split("\n", trimspace(var.config))) > 1 ? var.config : file(var.config)

  driver = var.image != "" ? "docker" : "exec"

  # Refuses, when the job is parsed, a task that would have nothing to run;
  # the parse error quotes this text. Nothing may depend on this local, or
  # the parser reports the dependant's error instead.
  artifact_or_image = var.image != "" || var.artifact != "" ? true : parseint("set -var artifact=URL (exec driver) or -var image=IMAGE (docker driver)", 10)

  # The task dir is /local for both drivers (exec's chroot, docker's mount),
  # while the working directory is only the task dir under exec.
  config_file = "$${NOMAD_TASK_DIR}/drover.yaml"
  command     = local.driver == "docker" ? "drover" : "local/drover"

  # Scratch space: build output, the slug cache. In the alloc dir, which
  # outlives a restart of the task, and writable under both drivers.
  data_dir = "$${NOMAD_ALLOC_DIR}/data"

  server_args = ["server", "--config", local.config_file, "--data", local.data_dir, "--listen", "0.0.0.0:$${NOMAD_PORT_http}"]
  worker_args = ["worker", "--config", local.config_file, "--data", local.data_dir]

  env = {
    TEMPORAL_ADDRESS   = var.temporal_address
    TEMPORAL_NAMESPACE = var.temporal_namespace
    DROVER_SLUG_STORE  = var.slug_store
    DROVER_PUBLIC_URL  = var.public_url
  }

  # Every item of the variable becomes an environment variable, so a new
  # secret needs no edit here. toJSON quotes and escapes the value the way
  # the env file parser reads it.
  secrets_env = <<-EOT
    {{ with nomadVar "${var.secrets_path}" }}{{ range .Tuples }}{{ .K }}={{ .V | toJSON }}
    {{ end }}{{ end }}
  EOT
}

job "drover" {
  type        = "service"
  datacenters = var.datacenters
  node_pool   = var.node_pool

  group "server" {
    count = var.server_count

    network {
      port "http" {}
    }

    # canary = 1: each new version first starts one extra allocation, and
    # the old ones keep serving until it passes /readyz; only then is it
    # promoted and the rest replaced one at a time. A release that cannot
    # become ready (bad config, unreachable database or Temporal) so never
    # costs a serving replica: the old ones serve on until the deployment
    # fails at progress_deadline and auto_revert registers the last good
    # version again. With canary = 0 Nomad stops an old allocation before
    # its replacement is healthy, and a broken release keeps a two-replica
    # drover at one replica until then. The price: room for count+1
    # allocations during an update. A good release is still one replica
    # short while the last old ones are replaced; canary = count would avoid
    # that at the price of twice the room.
    update {
      max_parallel      = 1
      canary            = 1
      auto_promote      = true
      auto_revert       = true
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "3m"
      progress_deadline = "10m"
    }

    service {
      provider = "nomad"
      name     = "drover"
      port     = "http"
      tags     = var.service_tags

      # Ready means the database, Temporal and the slug store answer: the
      # gate of every update, so a new server replaces an old one only once
      # it can serve.
      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "5s"
        timeout  = "2s"
      }

      # Alive means the process answers at all. Only this check restarts the
      # task: a database outage makes every replica unready, and restarting
      # them all would not bring the database back.
      check {
        name     = "alive"
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "30s"
        }
      }
    }

    task "server" {
      driver = local.driver

      dynamic "artifact" {
        for_each = local.driver == "exec" ? [var.artifact] : []
        content {
          source      = artifact.value
          destination = "local/"
        }
      }

      dynamic "config" {
        for_each = local.driver == "exec" ? [1] : []
        content {
          command = local.command
          args    = local.server_args
        }
      }

      dynamic "config" {
        for_each = local.driver == "docker" ? [1] : []
        content {
          image   = var.image
          command = local.command
          args    = local.server_args
          ports   = ["http"]
        }
      }

      # The service is deregistered first, so traffic stops arriving before
      # the signal; then drover drains in-flight requests for up to ~30s.
      # A kill_timeout above the client's max_kill_timeout (default 30s) is
      # cut to it: raise that on the clients drover runs on.
      shutdown_delay = "5s"
      kill_signal    = "SIGTERM"
      kill_timeout   = "45s"

      # Regions with token_env: NOMAD_TOKEN deploy with the token stored in
      # Nomad Variables. On Nomad 1.7+ it can be the task's workload
      # identity instead, carrying the policies bound to the job; Nomad 1.6
      # reads with that token but refuses to register a job with it
      # ("ACL token is invalid"), so it is off by default (README.md).
      identity {
        env = var.nomad_token_from_identity
      }

      env = local.env

      template {
        destination = "secrets/drover.env"
        env         = true
        data        = local.secrets_env
        # A rotated secret restarts the task; splay staggers the replicas
        # so they do not all restart in the same instant.
        change_mode = "restart"
        splay       = "30s"
      }

      template {
        destination = "local/drover.yaml"
        data        = local.config
        change_mode = "restart"
        splay       = "30s"
      }

      resources {
        cpu    = var.server_resources.cpu
        memory = var.server_resources.memory
      }
    }
  }

  group "worker" {
    count = var.worker_count

    # Workers can be replaced at any time: every change of a workflow's
    # shape is guarded by workflow.GetVersion, so a new worker replays the
    # histories old code wrote, and a history an old worker cannot replay
    # only fails that workflow task, which Temporal retries until a new
    # worker takes it. The canary keeps the old workers polling until the new one has stayed up
    # for min_healthy_time, so a worker that crashes at start (bad config,
    # missing secret) replaces none of them.
    update {
      max_parallel      = 1
      canary            = 1
      auto_promote      = true
      auto_revert       = true
      health_check      = "task_states"
      min_healthy_time  = "10s"
      healthy_deadline  = "3m"
      progress_deadline = "10m"
    }

    task "worker" {
      driver = local.driver

      dynamic "artifact" {
        for_each = local.driver == "exec" ? [var.artifact] : []
        content {
          source      = artifact.value
          destination = "local/"
        }
      }

      dynamic "config" {
        for_each = local.driver == "exec" ? [1] : []
        content {
          command = local.command
          args    = local.worker_args
        }
      }

      dynamic "config" {
        for_each = local.driver == "docker" ? [1] : []
        content {
          image   = var.image
          command = local.command
          args    = local.worker_args
        }
      }

      # On SIGTERM the worker stops polling and lets running activities
      # finish; a long one that is cut off is retried on another worker when
      # its heartbeat times out. Raise the clients' max_kill_timeout (default
      # 30s) to at least this, or Nomad kills the worker at 30s.
      kill_signal  = "SIGTERM"
      kill_timeout = "90s"

      identity {
        env = var.nomad_token_from_identity
      }

      env = local.env

      template {
        destination = "secrets/drover.env"
        env         = true
        data        = local.secrets_env
        change_mode = "restart"
        splay       = "30s"
      }

      template {
        destination = "local/drover.yaml"
        data        = local.config
        change_mode = "restart"
        splay       = "30s"
      }

      resources {
        cpu    = var.worker_resources.cpu
        memory = var.worker_resources.memory
      }
    }
  }
}
