package statuspage

// For the external tests (the browser test).
var (
	ThreeTiersForTest = threeTiers
	ArrivalsForTest   = arrivals
)
