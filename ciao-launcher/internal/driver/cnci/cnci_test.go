package cnci

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
)

func testDriver(pool string) *Driver {
	_, n, _ := net.ParseCIDR(pool)
	return New(Config{Agent: "/nonexistent", CACert: "ca", Cert: "cert", Pool: *n, Prefix: 24})
}

func TestBadSpecAndPool(t *testing.T) {
	d := testDriver("10.9.0.8/31")
	if _, err := d.Start(context.Background(), driver.Spec{InstanceUUID: "a", VnicMAC: "zz"}); !errors.Is(err, driver.ErrBadSpec) {
		t.Errorf("bad MAC: %v", err)
	}
	a, err := d.allocate("a")
	if err != nil || a.String() != "10.9.0.8" {
		t.Fatalf("first address %v %v", a, err)
	}
	if again, _ := d.allocate("a"); !again.Equal(a) {
		t.Errorf("same instance got %v then %v", a, again)
	}
	if b, err := d.allocate("b"); err != nil || b.String() != "10.9.0.9" {
		t.Fatalf("second address %v %v", b, err)
	}
	if _, err := d.allocate("c"); !errors.Is(err, driver.ErrLaunch) {
		t.Errorf("exhausted pool: %v", err)
	}
	d.release("10.9.0.8")
	if c, err := d.allocate("c"); err != nil || c.String() != "10.9.0.8" {
		t.Errorf("released address not reused: %v %v", c, err)
	}
	bad := New(Config{Agent: "x"})
	if _, err := bad.Start(context.Background(), driver.Spec{VnicMAC: "02:00:00:00:00:01"}); !errors.Is(err, driver.ErrLaunch) {
		t.Errorf("unconfigured driver: %v", err)
	}
}
