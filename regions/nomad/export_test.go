package nomad

// RenderRunJob is renderRunJob, for golden tests.
var RenderRunJob = renderRunJob
