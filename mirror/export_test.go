package mirror

// SetFetchChunk makes Fetch calls carry at most n files until the returned
// function restores the default.
func SetFetchChunk(n int) func() {
	old := fetchChunk
	fetchChunk = n
	return func() { fetchChunk = old }
}
