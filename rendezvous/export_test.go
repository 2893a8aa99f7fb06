package rendezvous

// ResourceLimits exports the resource manager's limits to the tests.
var ResourceLimits = resourceLimits

// NewResourceManager exports newResourceManager to the tests.
var NewResourceManager = newResourceManager
