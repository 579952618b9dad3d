package local

// RotateLog is rotateLog, for tests of log rotation.
var RotateLog = rotateLog
