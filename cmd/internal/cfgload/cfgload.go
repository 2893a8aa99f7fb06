// Package cfgload loads a command's configuration the same way for every
// natter binary, with a private viper instance (never the global one).
//
// Precedence, lowest to highest:
//
//	built-in defaults (the Config struct handed in)
//	  < YAML file given by --config
//	  < NATTER_* environment variables
//	  < command-line flags that were explicitly set
//
// Keys are the `mapstructure` tags of the config struct, nested with dots
// ("relay.max_reservations"). The environment variable of a key is NATTER_
// followed by the key upper-cased with dots turned into underscores
// (NATTER_RELAY_MAX_RESERVATIONS). Lists may be given in the environment as
// comma-separated values; durations as Go duration strings ("90s", "1h").
//
// A key in the file that the struct does not know is an error, so a typo
// never silently falls back to a default.
package cfgload

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix is the prefix of every environment variable natter reads.
const EnvPrefix = "NATTER"

// Load fills out (a pointer to a config struct) from defaults (a value or
// pointer of the same struct type), the YAML file at path ("" = none), the
// environment and the flags in flags that were explicitly set. flagKeys
// maps a flag name to the config key it sets; flags not in it are ignored.
func Load(path string, defaults any, out any, flags *pflag.FlagSet, flagKeys map[string]string) error {
	ov := reflect.ValueOf(out)
	if ov.Kind() != reflect.Pointer || ov.IsNil() || ov.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("cfgload: out must be a non-nil pointer to a struct, not %T", out)
	}
	dv := reflect.Indirect(reflect.ValueOf(defaults))
	if dv.Type() != ov.Elem().Type() {
		return fmt.Errorf("cfgload: defaults is %s, out is %s", dv.Type(), ov.Elem().Type())
	}

	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	known := map[string]bool{}
	setDefaults(v, dv, "", known)

	if path != "" {
		if err := readFile(v, path, known); err != nil {
			return err
		}
	}

	for name, key := range flagKeys {
		if !known[key] {
			return fmt.Errorf("cfgload: flag --%s is mapped to unknown key %q", name, key)
		}
		if flags == nil {
			continue
		}
		f := flags.Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			v.Set(key, sv.GetSlice())
		} else {
			v.Set(key, f.Value.String())
		}
	}

	// Decode into a zero value: mapstructure merges slices into existing
	// ones, and every key has a default in v anyway.
	fresh := reflect.New(ov.Elem().Type())
	if err := v.Unmarshal(fresh.Interface()); err != nil {
		return fmt.Errorf("config: %s", decodeMessage(err))
	}
	ov.Elem().Set(fresh.Elem())
	return nil
}

func readFile(v *viper.Viper, path string, known map[string]bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	// Parse the file alone first so that its keys can be checked.
	fv := viper.New()
	fv.SetConfigType("yaml")
	if err := fv.ReadConfig(bytes.NewReader(b)); err != nil {
		var cpe viper.ConfigParseError
		if errors.As(err, &cpe) {
			err = cpe.Unwrap()
		}
		return fmt.Errorf("config %s: %s", path, oneLine(err.Error()))
	}
	var unknown []string
	for _, k := range fv.AllKeys() {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("config %s: unknown key %s", path, strings.Join(quoteAll(unknown), ", "))
	}
	if err := v.MergeConfigMap(fv.AllSettings()); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// setDefaults registers every leaf field of the struct value sv as a
// default under its mapstructure key and records the key in known.
func setDefaults(v *viper.Viper, sv reflect.Value, prefix string, known map[string]bool) {
	t := sv.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("mapstructure"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		key := prefix + name
		fv := sv.Field(i)
		if sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeFor[time.Time]() {
			known[key] = true // a section; a scalar here fails at decoding
			setDefaults(v, fv, key+".", known)
			continue
		}
		known[key] = true
		v.SetDefault(key, fv.Interface())
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// decodeMessage turns mapstructure's multi-line report
//
//	decoding failed due to the following error(s):
//
//	'relay.reservation_ttl' time: invalid duration "soon"
//
// into "relay.reservation_ttl: time: invalid duration ...".
func decodeMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):")
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "'") {
			if key, rest, ok := strings.Cut(l[1:], "' "); ok {
				l = key + ": " + rest
			}
		}
		parts = append(parts, l)
	}
	return strings.Join(parts, "; ")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
