package ssntp

import (
	"fmt"

	"github.com/ciao-project/ciao/uuid"
)

// ForwardDecision is what a Forwarder decides for one frame.
type ForwardDecision int

const (
	// Discard drops the frame; the server application is still notified.
	Discard ForwardDecision = iota
	// Forward sends the frame unchanged to the chosen recipients.
	Forward
)

// ForwardDestination is a Forwarder's answer.
type ForwardDestination struct {
	Decision   ForwardDecision
	Recipients []uuid.UUID
}

// AddRecipient adds a recipient and sets the decision to Forward.
func (d *ForwardDestination) AddRecipient(id uuid.UUID) {
	d.Decision = Forward
	d.Recipients = append(d.Recipients, id)
}

// ForwardTo is a decision to forward to the given recipients.
func ForwardTo(ids ...uuid.UUID) ForwardDestination {
	return ForwardDestination{Decision: Forward, Recipients: ids}
}

// Forwarder chooses where a frame goes. It runs on the reading goroutine
// of the sender's connection, before the server application is notified,
// so frames from one sender are decided in wire order. The sender may be
// among the recipients; unknown recipients are skipped.
type Forwarder func(source uuid.UUID, sourceRole Role, f *Frame) ForwardDestination

// ForwardRule names one operand of one frame type and where frames with it
// go: to every client holding Dest, or wherever Forwarder decides. Exactly
// one of Dest and Forwarder is set.
type ForwardRule struct {
	Type      Type
	Operand   uint8
	Dest      Role
	Forwarder Forwarder
}

// CommandRule, StatusRule, EventRule and ErrorRule build rules with the
// operand typed, so Command 3 and Status 3 cannot be confused.
func CommandRule(op Command, dest Role, fwd Forwarder) ForwardRule {
	return ForwardRule{Type: COMMAND, Operand: uint8(op), Dest: dest, Forwarder: fwd}
}

// StatusRule builds a rule for a STATUS operand.
func StatusRule(op Status, dest Role, fwd Forwarder) ForwardRule {
	return ForwardRule{Type: STATUS, Operand: uint8(op), Dest: dest, Forwarder: fwd}
}

// EventRule builds a rule for an EVENT operand.
func EventRule(op Event, dest Role, fwd Forwarder) ForwardRule {
	return ForwardRule{Type: EVENT, Operand: uint8(op), Dest: dest, Forwarder: fwd}
}

// ErrorRule builds a rule for an ERROR operand.
func ErrorRule(op Error, dest Role, fwd Forwarder) ForwardRule {
	return ForwardRule{Type: ERROR, Operand: uint8(op), Dest: dest, Forwarder: fwd}
}

type ruleKey struct {
	t  Type
	op uint8
}

func buildRules(rules []ForwardRule) (map[ruleKey]ForwardRule, error) {
	m := make(map[ruleKey]ForwardRule, len(rules))
	for _, r := range rules {
		if r.Type > EVENT {
			return nil, fmt.Errorf("ssntp: forward rule for invalid frame type %d", r.Type)
		}
		if (r.Dest == UNKNOWN) == (r.Forwarder == nil) {
			return nil, fmt.Errorf("ssntp: forward rule %s/%d needs exactly one of Dest and Forwarder", r.Type, r.Operand)
		}
		k := ruleKey{r.Type, r.Operand}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("ssntp: two forward rules for %s/%d", r.Type, r.Operand)
		}
		m[k] = r
	}
	return m, nil
}
