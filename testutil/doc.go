// Package testutil holds what Ciao's tests share: SSNTP certificates made
// at test time, fake SSNTP peers for every role (controller, agent,
// netagent, CNCI agent, server) that record what they receive and let a
// test script what they send, and the fixed identifiers and payloads of the
// 2016 test suite. Only _test.go files import it.
package testutil
