package payloads

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Errors. Decoding failures wrap ErrInvalidPayload and failed checks wrap
// ErrInvalidData, matching the failure reasons invalid_payload and
// invalid_data that a launcher sends back. Compare with errors.Is.
var (
	// ErrInvalidPayload: the YAML could not be decoded.
	ErrInvalidPayload = errors.New("payloads: invalid payload")
	// ErrInvalidData: the payload decoded but lacks or misstates required
	// information.
	ErrInvalidData = errors.New("payloads: invalid data")
	// ErrNoStart: SplitStart found no START section. It wraps
	// ErrInvalidPayload.
	ErrNoStart = fmt.Errorf("%w: no start section", ErrInvalidPayload)
)

// looseID is the launcher's instance_uuid / volume_uuid pattern.
var looseID = regexp.MustCompile(`^[0-9a-fA-F]+(-[0-9a-fA-F]+)*$`)

// ValidID reports whether s, after trimming surrounding white space, is
// groups of hex digits joined by single dashes: the only check ciao-launcher
// makes on instance and volume ids. It is looser than a UUID on purpose
// (the 2016 test volume id 67d86208-b46c-4465-9018-e14187d4010 passes).
func ValidID(s string) bool {
	return looseID.MatchString(strings.TrimSpace(s))
}

// requireID returns an ErrInvalidData error naming what and key unless
// ValidID(id).
func requireID(what, key, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %s: invalid %s %q", ErrInvalidData, what, key, id)
	}
	return nil
}
