# drover-deployer: the least a drover needs to deploy apps into a Nomad
# namespace (README.md):
#
#   nomad acl policy apply -description "drover deploys apps" \
#     drover-deployer drover-deployer.policy.hcl
#   nomad acl token create -name drover -policy drover-deployer
#
# and the token's Secret ID goes into Nomad Variables as NOMAD_TOKEN. On
# Nomad 1.7 or newer the job's workload identity can carry the policy
# instead: add -namespace default -job drover to the apply.
#
# Name each namespace a region's `namespace:` in drover.yaml deploys to
# (default "default"); a glob such as "apps-*" covers several.
namespace "default" {
  capabilities = [
    # Find a destroyed app's one-off jobs (release phases) to purge them.
    "list-jobs",
    # Read jobs, their versions, deployments, allocations, evaluations and
    # service registrations: watching a rollout, saying why it failed,
    # reading an app's live URL.
    "read-job",
    # Register an app's job and its release-phase batch jobs, re-register
    # (rollback), stop and purge them; promote and fail deployments, which
    # Nomad ties to the same right; parse a user's HCL job template.
    "submit-job",
    # The tail of a failed task's stdout and stderr, quoted in the failure.
    "read-logs",
  ]

  # Apps' config vars: each job drover registers reads its own variable
  # nomad/jobs/<job ID> (one item per release), which drover writes before
  # registering the job, prunes to the newest releases, and deletes when it
  # stops the app or a release phase finished. Reading is needed to keep
  # the other releases' items and to refuse a variable drover did not write.
  variables {
    path "nomad/jobs/*" {
      capabilities = ["read", "write", "destroy", "list"]
    }
  }
}

# Left out on purpose: node read (log reads then go through a server rather
# than straight to the client node, which only costs a hop), alloc-lifecycle
# and alloc-exec (drover never restarts, signals or enters an allocation;
# a new release is a new job version), dispatch-job and scale-job (drover
# re-registers the job with the new formation instead), and variables
# outside nomad/jobs/ (drover's own secrets are readable by its job
# without any policy). Deploying into the namespace drover itself runs in
# lets this token read nomad/jobs/drover too; give apps their own
# namespace to keep them apart.
