package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
)

// tlsResult is what each side of a handshake saw.
type tlsResult struct {
	serverErr, clientErr error
	serverSaw, clientSaw ssntp.Role // the role in the peer's certificate
}

// handshake runs a mutual-TLS exchange over loopback the way SSNTP peers
// configure it (ssntp.md §3.1). Loopback rather than net.Pipe,
// because a rejected TLS 1.3 client finishes its handshake before the
// server's alert arrives, and unbuffered pipes would deadlock on it.
func handshake(t *testing.T, version uint16, caPEM, serverPEM, clientPEM []byte) (res tlsResult) {
	t.Helper()
	pool, err := CertPool(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	pair := func(b []byte) tls.Certificate {
		c, err := tls.X509KeyPair(b, b)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	srvCfg := &tls.Config{
		Certificates: []tls.Certificate{pair(serverPEM)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   version,
		MaxVersion:   version,
	}
	cliCfg := &tls.Config{
		Certificates: []tls.Certificate{pair(clientPEM)},
		RootCAs:      pool,
		ServerName:   "localhost",
		MinVersion:   version,
		MaxVersion:   version,
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(20 * time.Second)

	type result struct {
		err  error
		role ssntp.Role
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		tc := tls.Server(c, srvCfg)
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		role := ssntp.RoleFromCert(tc.ConnectionState().PeerCertificates[0])
		buf := make([]byte, 4)
		if _, err := io.ReadFull(tc, buf); err != nil {
			done <- result{err: err}
			return
		}
		_, err = tc.Write([]byte("pong"))
		done <- result{err: err, role: role}
	}()

	res.clientErr = func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		tc := tls.Client(c, cliCfg)
		if err := tc.Handshake(); err != nil {
			return err
		}
		if v := tc.ConnectionState().Version; v != version {
			t.Errorf("negotiated version %x, want %x", v, version)
		}
		res.clientSaw = ssntp.RoleFromCert(tc.ConnectionState().PeerCertificates[0])
		if _, err := tc.Write([]byte("ping")); err != nil {
			return err
		}
		// A TLS 1.3 client learns that the server rejected its
		// certificate only here.
		_, err = io.ReadFull(tc, make([]byte, 4))
		return err
	}()
	r := <-done
	res.serverErr, res.serverSaw = r.err, r.role
	return res
}

// TestMutualTLS makes the anchor the scheduler's certificate and an agent
// leaf the client's, as ciao does, for every key type and TLS 1.2 and 1.3.
func TestMutualTLS(t *testing.T) {
	versions := []struct {
		name string
		v    uint16
	}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

	for _, kt := range []KeyType{KeyECDSAP256, KeyRSA, KeyECDSAP521} {
		t.Run(kt.String(), func(t *testing.T) {
			caPEM, anchor := newAnchor(t, Template{Hosts: []string{"localhost"}, Roles: ssntp.SCHEDULER, KeyType: kt})
			leaf := newLeaf(t, anchor, Template{Hosts: []string{"localhost"}, Roles: ssntp.AGENT, KeyType: kt})
			// The impostor's anchor carries the same subject and names,
			// so only the signature tells them apart.
			_, otherAnchor := newAnchor(t, Template{Hosts: []string{"localhost"}, Roles: ssntp.SCHEDULER, KeyType: kt})
			foreign := newLeaf(t, otherAnchor, Template{Hosts: []string{"localhost"}, Roles: ssntp.AGENT, KeyType: kt})

			for _, ver := range versions {
				t.Run(ver.name, func(t *testing.T) {
					r := handshake(t, ver.v, caPEM, anchor, leaf)
					if r.serverErr != nil || r.clientErr != nil {
						t.Fatalf("handshake failed: server %v, client %v", r.serverErr, r.clientErr)
					}
					if r.serverSaw != ssntp.AGENT || r.clientSaw != ssntp.SCHEDULER {
						t.Errorf("server saw role %#x, client saw %#x", r.serverSaw, r.clientSaw)
					}
				})
				t.Run(ver.name+"/foreign client", func(t *testing.T) {
					r := handshake(t, ver.v, caPEM, anchor, foreign)
					if r.serverErr == nil || r.clientErr == nil {
						t.Fatalf("foreign leaf accepted: server %v, client %v", r.serverErr, r.clientErr)
					}
					var unknown x509.UnknownAuthorityError
					if !errors.As(r.serverErr, &unknown) {
						t.Errorf("server error %v, want unknown authority", r.serverErr)
					}
				})
				t.Run(ver.name+"/foreign server", func(t *testing.T) {
					r := handshake(t, ver.v, caPEM, otherAnchor, leaf)
					if r.serverErr == nil || r.clientErr == nil {
						t.Fatalf("foreign server accepted: server %v, client %v", r.serverErr, r.clientErr)
					}
					var unknown x509.UnknownAuthorityError
					if !errors.As(r.clientErr, &unknown) {
						t.Errorf("client error %v, want unknown authority", r.clientErr)
					}
				})
			}
		})
	}
}
