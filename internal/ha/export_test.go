package ha

// SetUnconfirmed makes r the claim whose transaction got no answer, as
// Claim does when etcd does not answer its commit (for TestResolve).
func (n *Node) SetUnconfirmed(r Record) { n.unconfirmed = &r }
