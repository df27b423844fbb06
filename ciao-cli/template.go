package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
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
	// Jan 2017 filters and the Mar 2017 slice helpers (cli.md §9).
	"filterContains":  filterBy(strings.Contains),
	"filterHasPrefix": filterBy(strings.HasPrefix),
	"filterHasSuffix": filterBy(strings.HasSuffix),
	"filterFolded":    filterBy(strings.EqualFold),
	"filterRegexp": func(slice any, field, expr string) (any, error) {
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("filterRegexp: %w", err)
		}
		return filterBy(func(v, _ string) bool { return re.MatchString(v) })(slice, field, expr)
	},
	"head": func(slice any, n ...int) (any, error) { return sliceRange(slice, n, true) },
	"tail": func(slice any, n ...int) (any, error) { return sliceRange(slice, n, false) },
	"rows": rowsOf,
	"sort": sortBy,
}

// filterBy returns a filter keeping the elements whose field, formatted
// with %v, matches value by match(fieldValue, value).
func filterBy(match func(v, value string) bool) func(any, string, string) (any, error) {
	return func(slice any, field, value string) (any, error) {
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
			if match(fmt.Sprint(f.Interface()), value) {
				out = reflect.Append(out, s.Index(i))
			}
		}
		return out.Interface(), nil
	}
}

// sliceRange is head (the first n, default 1) or tail (the last n).
func sliceRange(slice any, n []int, head bool) (any, error) {
	s := reflect.ValueOf(slice)
	if s.Kind() != reflect.Slice {
		return nil, fmt.Errorf("head/tail: %T is not a slice", slice)
	}
	k := 1
	if len(n) > 0 {
		k = n[0]
	}
	k = max(0, min(k, s.Len()))
	if head {
		return s.Slice(0, k).Interface(), nil
	}
	return s.Slice(s.Len()-k, s.Len()).Interface(), nil
}

// rowsOf returns the elements at the given indices (out of range: skipped).
func rowsOf(slice any, idx ...int) (any, error) {
	s := reflect.ValueOf(slice)
	if s.Kind() != reflect.Slice {
		return nil, fmt.Errorf("rows: %T is not a slice", slice)
	}
	out := reflect.MakeSlice(s.Type(), 0, len(idx))
	for _, i := range idx {
		if i >= 0 && i < s.Len() {
			out = reflect.Append(out, s.Index(i))
		}
	}
	return out.Interface(), nil
}

// sortBy returns a copy of slice sorted by field (numbers numerically,
// anything else by its %v text), ascending or, with "dsc", descending.
func sortBy(slice any, field string, dir ...string) (any, error) {
	s := reflect.ValueOf(slice)
	if s.Kind() != reflect.Slice {
		return nil, fmt.Errorf("sort: %T is not a slice", slice)
	}
	keys := make([]reflect.Value, s.Len())
	for i := range keys {
		f, err := fieldPath(s.Index(i), field)
		if err != nil {
			return nil, fmt.Errorf("sort: %w", err)
		}
		keys[i] = f
	}
	idx := make([]int, s.Len())
	for i := range idx {
		idx[i] = i
	}
	less := func(a, b reflect.Value) bool {
		switch a.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return a.Int() < b.Int()
		case reflect.Float32, reflect.Float64:
			return a.Float() < b.Float()
		}
		return fmt.Sprint(a.Interface()) < fmt.Sprint(b.Interface())
	}
	desc := len(dir) > 0 && dir[0] == "dsc"
	sort.SliceStable(idx, func(i, j int) bool {
		if desc {
			return less(keys[idx[j]], keys[idx[i]])
		}
		return less(keys[idx[i]], keys[idx[j]])
	})
	out := reflect.MakeSlice(s.Type(), 0, s.Len())
	for _, i := range idx {
		out = reflect.Append(out, s.Index(i))
	}
	return out.Interface(), nil
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
	return filterBy(func(v, value string) bool { return v == value })(slice, field, value)
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
