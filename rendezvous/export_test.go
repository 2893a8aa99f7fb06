package rendezvous

// ResourceLimits exports the resource manager's limits to the tests.
var ResourceLimits = resourceLimits
