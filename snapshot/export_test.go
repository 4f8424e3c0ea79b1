package snapshot

// LocalFS is localFS for the external tests.
var LocalFS = localFS
