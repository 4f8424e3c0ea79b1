package mirror

// WithLimits returns o with Fetch calls carrying at most fetchChunk files
// and pass 1 keeping at most planCap records for pass 2 (0: unchanged), so
// that a small tree takes the streamed paths.
func (o Options) WithLimits(fetchChunk, planCap int) Options {
	if o.lim == (limits{}) {
		o.lim = defaultLimits()
	}
	if fetchChunk > 0 {
		o.lim.fetchChunk = fetchChunk
	}
	if planCap > 0 {
		o.lim.planCap = planCap
	}
	return o
}
