package workflows

// AwaitResult is awaitResult, for tests of a wait whose close was dropped.
var AwaitResult = awaitResult
