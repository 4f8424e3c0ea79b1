package export

// H2CHeader is the response header with which a seqmirror server (serve,
// the daemon) says that it also accepts HTTP/2 over cleartext TCP with
// prior knowledge (RFC 9113 section 3.3) on the same port; its value is
// H2CPriorKnowledge. An HTTP client of the export root may then send its
// further requests (the files of a sync) as HTTP/2 streams on one
// connection instead of one HTTP/1.1 request per connection at a time
// (docs/protocol.md, section 7). Stock web servers never send it, so a
// client talks HTTP/1.1 to them.
const (
	H2CHeader         = "Seqmirror-H2c"
	H2CPriorKnowledge = "prior-knowledge"
)
