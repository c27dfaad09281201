package tenant

import (
	"reflect"
	"strings"
	"testing"
)

// TestSettingsDiffCoversEveryField: a settings field added later is
// audited without anyone remembering to.
func TestSettingsDiffCoversEveryField(t *testing.T) {
	typ := reflect.TypeFor[settings]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "audit_retention_days" {
			continue // recorded by the audit log's SetRetention
		}
		var a, b settings
		fv := reflect.ValueOf(&b).Elem().Field(i)
		switch fv.Kind() {
		case reflect.String:
			fv.SetString("changed")
		case reflect.Int, reflect.Int64:
			fv.SetInt(7)
		case reflect.Bool:
			fv.SetBool(true)
		default:
			t.Fatalf("field %s of kind %s: extend this test", f.Name, fv.Kind())
		}
		from, to := settingsDiff(&a, &b)
		if _, ok := from[name]; !ok || len(from) != 1 || to[name] != fv.Interface() {
			t.Errorf("changing %s gives from %v to %v", name, from, to)
		}
	}
}
