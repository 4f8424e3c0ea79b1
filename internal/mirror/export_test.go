package mirror

// SetFetchChunk makes Fetch calls carry at most n files until the returned
// function restores the default.
func SetFetchChunk(n int) func() {
	old := fetchChunk
	fetchChunk = n
	return func() { fetchChunk = old }
}

// SetPlanCap makes pass 1 keep at most n records for pass 2 until the
// returned function restores the default.
func SetPlanCap(n int) func() {
	old := planCap
	planCap = n
	return func() { planCap = old }
}
