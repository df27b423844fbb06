package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/template"
)

// templateFuncs are the helpers -f templates may call (cli.md §9).
var templateFuncs = template.FuncMap{
	"tojson": func(v any) (string, error) {
		b, err := json.MarshalIndent(v, "", "\t")
		return string(b), err
	},
	"filter": filterField,
	"select": selectField,
}

// render executes the -f template on v. The output is written only when
// the whole template succeeded, so a failing template prints nothing.
func render(w io.Writer, format string, v any) error {
	t, err := template.New("-f").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return fmt.Errorf("bad -f template: %v (the sub-command's -help lists the fields)", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return fmt.Errorf("bad -f template: %v (the sub-command's -help lists the fields)", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// fieldPath follows a dotted Go field path such as "Flavor.ID".
func fieldPath(v reflect.Value, path string) (reflect.Value, error) {
	for _, name := range strings.Split(path, ".") {
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, fmt.Errorf("%s: not a struct", path)
		}
		v = v.FieldByName(name)
		if !v.IsValid() {
			return reflect.Value{}, fmt.Errorf("no field %q", name)
		}
	}
	return v, nil
}

// filterField keeps the elements of slice whose field, formatted with %v,
// equals value.
func filterField(slice any, field, value string) (any, error) {
	s := reflect.ValueOf(slice)
	if s.Kind() != reflect.Slice {
		return nil, fmt.Errorf("filter: %T is not a slice", slice)
	}
	out := reflect.MakeSlice(s.Type(), 0, s.Len())
	for i := 0; i < s.Len(); i++ {
		f, err := fieldPath(s.Index(i), field)
		if err != nil {
			return nil, fmt.Errorf("filter: %w", err)
		}
		if fmt.Sprint(f.Interface()) == value {
			out = reflect.Append(out, s.Index(i))
		}
	}
	return out.Interface(), nil
}

// selectField returns one line per element with its field's value.
func selectField(slice any, field string) (string, error) {
	s := reflect.ValueOf(slice)
	if s.Kind() != reflect.Slice {
		return "", fmt.Errorf("select: %T is not a slice", slice)
	}
	var b strings.Builder
	for i := 0; i < s.Len(); i++ {
		f, err := fieldPath(s.Index(i), field)
		if err != nil {
			return "", fmt.Errorf("select: %w", err)
		}
		fmt.Fprintln(&b, f.Interface())
	}
	return b.String(), nil
}
