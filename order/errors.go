package order

import (
	"fmt"
	"strings"
)

// FieldError says what is wrong with one field of a submitted order.
type FieldError struct {
	// Field is the JSON path of the field, such as "targets[3].fqdn".
	Field string `json:"field"`
	// Value is the offending value as submitted, when there is one.
	Value string `json:"value,omitempty"`
	// Message says what is wrong and, where it can, what to do instead.
	Message string `json:"message"`
}

func (e FieldError) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("%s: %q %s", e.Field, e.Value, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Message)
}

// InvalidError is returned for an order that cannot be accepted. It lists
// every problem found, not only the first, so that an authority can fix
// a submission in one round.
type InvalidError struct {
	Fields []FieldError `json:"fields"`
}

// maxFieldErrors bounds the report on a hopeless submission (a million bad
// targets should not produce a million-line error).
const maxFieldErrors = 100

func (e *InvalidError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "order rejected: %d problem", len(e.Fields))
	if len(e.Fields) != 1 {
		b.WriteString("s")
	}
	for _, f := range e.Fields {
		b.WriteString("\n  ")
		b.WriteString(f.Error())
	}
	return b.String()
}

func (e *InvalidError) add(field, value, format string, args ...any) {
	if len(e.Fields) >= maxFieldErrors {
		return
	}
	e.Fields = append(e.Fields, FieldError{Field: field, Value: value, Message: fmt.Sprintf(format, args...)})
}

func (e *InvalidError) orNil() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}
