package profiles

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/bitplan/bitplan/internal/jsonx"
	"github.com/bitplan/bitplan/internal/readfile"
)

// Kind is the class of device a profile describes.
type Kind string

// Device kinds.
const (
	GPU Kind = "gpu"
	CPU Kind = "cpu"
	NPU Kind = "npu"
)

// Unit conversions between the file format and the SI units of Profile.
const (
	tera = 1e12 // TOPS → ops/s
	giga = 1e9  // GB/s → bytes/s (1 GB = 10⁹ bytes, as datasheets use)
	pico = 1e-12
	us   = 1e-6
)

// Profile describes one device for the cost models: per-precision peak
// throughput, memory bandwidth, a fixed per-layer overhead, an efficiency
// factor and energy estimates, each number with its citation in Sources.
// Fields are in SI units; the file format (see the package comment and
// SCHEMA.md) uses TOPS, GB/s, µs and pJ.
//
// A Profile built in Go should be checked with Validate before use.
type Profile struct {
	// Name is the short identifier used on the command line, e.g. "t4".
	Name string
	// Description is a one-line human description of the device.
	Description string
	// Kind is gpu, cpu or npu.
	Kind Kind
	// Bandwidth is the peak DRAM bandwidth in bytes per second (> 0).
	Bandwidth float64
	// Overhead is the fixed cost of running one layer, in seconds (≥ 0),
	// e.g. a GPU kernel launch.
	Overhead float64
	// Efficiency is the achievable fraction of peak compute throughput, in
	// (0, 1]. The roofline's compute time divides by peak × Efficiency;
	// bandwidth is taken at its peak. A precision may override it.
	Efficiency float64
	// DRAMEnergy is the energy of moving one byte to or from DRAM, in joules
	// (≥ 0; 0 means unknown).
	DRAMEnergy float64
	// MemoryEfficiency is the achievable fraction of peak bandwidth, in
	// (0, 1]; 0 means 1 (the datasheet peak). Usually fitted (Profile.Fit).
	MemoryEfficiency float64
	// Precisions lists the precision pairs the device runs natively, sorted
	// by total width. Pairs not listed fall back to a wider one (see
	// Profile.Resolve).
	Precisions []PrecisionSpec
	// Sources maps each numeric field of the file, by its path in the file
	// (e.g. "memory_bandwidth_gb_per_s", "precisions.w8a8.peak_tops"), to its
	// citation or derivation.
	Sources map[string]string
	// ALU holds the element-wise integer and float units ("int32",
	// "fp32") that run non-linearities (NonlinearCost); nil when the
	// profile gives none.
	ALU map[string]ALUSpec
	// Notes are free-text remarks kept from the file.
	Notes []string
	// Origin tells where the profile came from: "builtin" or a file path.
	Origin string
	// Warnings are non-fatal problems found while parsing (unknown fields,
	// numbers without a source). They are data, for the caller to print.
	Warnings []string
}

// PrecisionSpec is the device's throughput and energy at one precision.
type PrecisionSpec struct {
	// Precision is the (weight, activation) pair.
	Precision Precision
	// Format is "int" or "fp".
	Format string
	// PeakOps is the dense peak throughput in operations per second, counting
	// one multiply-accumulate (MAC) as two operations, as datasheets do
	// ("TOPS", "TFLOPS"). Sparse (2:4) figures are not used.
	PeakOps float64
	// Efficiency overrides Profile.Efficiency for this precision when > 0.
	Efficiency float64
	// EnergyPerMAC is the energy of one MAC in joules (0 = unknown).
	EnergyPerMAC float64
	// Overhead overrides Profile.Overhead for this precision when
	// HasOverhead is set: the fixed time of one layer's kernel, in seconds.
	Overhead float64
	// HasOverhead tells whether Overhead is set.
	HasOverhead bool
}

// PeakMACs returns the dense peak in MACs per second: PeakOps / 2.
func (s PrecisionSpec) PeakMACs() float64 { return s.PeakOps / 2 }

// Spec returns the native spec for q, if the device lists it.
func (p *Profile) Spec(q Precision) (PrecisionSpec, bool) {
	for _, s := range p.Precisions {
		if s.Precision == q {
			return s, true
		}
	}
	return PrecisionSpec{}, false
}

// ErrUnsupported is wrapped by errors for a precision that neither the
// device nor any wider pair on it can run.
var ErrUnsupported = errors.New("precision not supported")

// Resolve returns the spec used to run precision q: q itself when the device
// lists it, otherwise the narrowest listed pair that holds q (weights and
// activations both at least as wide; narrowest by total width, then by weight
// width). fellBack reports whether a wider pair was chosen. When no listed
// pair holds q the error wraps ErrUnsupported and the candidate should be
// removed from the problem.
//
// Operands keep their own widths in memory (size and traffic are costed at q);
// only the arithmetic runs at the wider pair.
func (p *Profile) Resolve(q Precision) (spec PrecisionSpec, fellBack bool, err error) {
	if s, ok := p.Spec(q); ok {
		return s, false, nil
	}
	found := false
	for _, s := range p.Precisions {
		if s.Precision.Holds(q) && (!found || s.Precision.less(spec.Precision)) {
			spec, found = s, true
		}
	}
	if !found {
		return PrecisionSpec{}, false, fmt.Errorf("profile %s: %s: %w (no native or wider pair; device has %s)", p.Name, q, ErrUnsupported, p.precisionList())
	}
	return spec, true, nil
}

func (p *Profile) precisionList() string {
	names := make([]string, len(p.Precisions))
	for i, s := range p.Precisions {
		names[i] = s.Precision.String()
	}
	return strings.Join(names, ", ")
}

// efficiency returns the efficiency applying to s.
func (p *Profile) efficiency(s PrecisionSpec) float64 {
	if s.Efficiency > 0 {
		return s.Efficiency
	}
	return p.Efficiency
}

// overhead returns the per-layer overhead applying to s.
func (p *Profile) overhead(s PrecisionSpec) float64 {
	if s.HasOverhead {
		return s.Overhead
	}
	return p.Overhead
}

// bandwidth returns the achievable bandwidth: Bandwidth × MemoryEfficiency.
func (p *Profile) bandwidth() float64 {
	if p.MemoryEfficiency > 0 {
		return p.Bandwidth * p.MemoryEfficiency
	}
	return p.Bandwidth
}

// Validate checks a profile's values: a name, a known kind, bandwidth,
// every peak > 0 and finite, efficiencies in (0, 1], overhead and energies
// ≥ 0, at least one precision, no duplicate precisions. It returns every
// problem found, joined, each naming the field and the value.
func (p *Profile) Validate() error {
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	if p.Name == "" {
		bad("name", "missing; want a short identifier like \"t4\"")
	} else if !validName(p.Name) {
		bad("name", "%q: want lower-case letters, digits, '.', '-' or '_'", p.Name)
	}
	switch p.Kind {
	case GPU, CPU, NPU:
	case "":
		bad("kind", "missing; want gpu, cpu or npu")
	default:
		bad("kind", "%q: want gpu, cpu or npu", p.Kind)
	}
	if !(p.Bandwidth > 0) || !finite(p.Bandwidth) {
		bad("memory_bandwidth_gb_per_s", "must be > 0, got %g GB/s", p.Bandwidth/giga)
	}
	if !(p.Overhead >= 0) || !finite(p.Overhead) {
		bad("layer_overhead_us", "must be ≥ 0, got %g µs", p.Overhead/us)
	}
	if !(p.Efficiency > 0 && p.Efficiency <= 1) {
		bad("efficiency", "must be in (0, 1], got %g", p.Efficiency)
	}
	if !(p.MemoryEfficiency >= 0 && p.MemoryEfficiency <= 1) {
		bad("memory_efficiency", "must be in (0, 1] (or absent), got %g", p.MemoryEfficiency)
	}
	if !(p.DRAMEnergy >= 0) || !finite(p.DRAMEnergy) {
		bad("dram_energy_pj_per_byte", "must be ≥ 0, got %g pJ", p.DRAMEnergy/pico)
	}
	if len(p.Precisions) == 0 {
		bad("precisions", "missing; want at least one precision such as \"w8a8\"")
	}
	seen := map[Precision]bool{}
	for _, s := range p.Precisions {
		f := "precisions." + s.Precision.String()
		if !s.Precision.Valid() {
			bad(f, "widths must be 1..64")
		}
		if seen[s.Precision] {
			bad(f, "listed twice")
		}
		seen[s.Precision] = true
		if s.Format != "int" && s.Format != "fp" {
			bad(f+".format", "%q: want \"int\" or \"fp\"", s.Format)
		}
		if !(s.PeakOps > 0) || !finite(s.PeakOps) {
			bad(f+".peak_tops", "must be > 0, got %g TOPS", s.PeakOps/tera)
		}
		if !(s.Efficiency >= 0 && s.Efficiency <= 1) {
			bad(f+".efficiency", "must be in (0, 1] (or absent), got %g", s.Efficiency)
		}
		if s.HasOverhead && (!(s.Overhead >= 0) || !finite(s.Overhead)) {
			bad(f+".layer_overhead_us", "must be ≥ 0, got %g µs", s.Overhead/us)
		}
		if !(s.EnergyPerMAC >= 0) || !finite(s.EnergyPerMAC) {
			bad(f+".energy_pj_per_mac", "must be ≥ 0, got %g pJ", s.EnergyPerMAC/pico)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("profile %s: %w", p.label(), errors.Join(errs...))
}

func (p *Profile) label() string {
	switch {
	case p.Origin != "" && p.Origin != "builtin":
		return p.Origin
	case p.Name != "":
		return p.Name
	}
	return "(unnamed)"
}

func validName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return s != ""
}

// fileProfile is the JSON file format; pointers tell absent from zero.
type fileProfile struct {
	Name        string                     `json:"name"`
	Description string                     `json:"description"`
	Kind        string                     `json:"kind"`
	Bandwidth   *float64                   `json:"memory_bandwidth_gb_per_s"`
	Overhead    *float64                   `json:"layer_overhead_us"`
	Efficiency  *float64                   `json:"efficiency"`
	DRAMEnergy  *float64                   `json:"dram_energy_pj_per_byte,omitempty"`
	MemEff      *float64                   `json:"memory_efficiency,omitempty"`
	Precisions  map[string]json.RawMessage `json:"precisions"`
	ALU         map[string]*fileALU        `json:"alu,omitempty"`
	Sources     map[string]string          `json:"sources,omitempty"`
	Notes       []string                   `json:"notes,omitempty"`
}

// fileALU is one entry of "alu" (int32 or fp32 vector ALUs).
type fileALU struct {
	GOPS  *float64 `json:"gops"`
	AddPJ *float64 `json:"add_pj"`
	MulPJ *float64 `json:"mul_pj"`
}

type filePrecision struct {
	Format     string   `json:"format"`
	PeakTOPS   *float64 `json:"peak_tops"`
	Efficiency *float64 `json:"efficiency,omitempty"`
	EnergyMAC  *float64 `json:"energy_pj_per_mac,omitempty"`
	Overhead   *float64 `json:"layer_overhead_us,omitempty"`
}

var (
	topFields       = jsonFields(fileProfile{})
	precisionFields = jsonFields(filePrecision{})
)

// Parse reads a profile in the JSON format described in the package comment
// and SCHEMA.md. origin names the data in messages (a file name, or "builtin").
//
// Malformed JSON, missing required fields, non-positive throughput or
// bandwidth, and precision keys that are not canonical names are errors, each
// naming origin, the field and the value. Unknown fields and numbers without
// an entry in "sources" are warnings, returned in Profile.Warnings.
func Parse(data []byte, origin string) (*Profile, error) {
	fail := func(err error) (*Profile, error) { return nil, fmt.Errorf("profile %s: %w", origin, err) }
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return fail(jsonx.Error(data, err))
	}
	if top == nil {
		return fail(errors.New("want a JSON object, got null"))
	}
	var warnings []string
	warnings = append(warnings, unknownKeys(top, topFields, "")...)
	var f fileProfile
	if err := json.Unmarshal(data, &f); err != nil {
		return fail(jsonx.Error(data, err))
	}
	if err := jsonx.Duplicates(data); err != nil {
		return fail(err)
	}
	p := &Profile{
		Name:        f.Name,
		Description: f.Description,
		Kind:        Kind(f.Kind),
		Sources:     f.Sources,
		Notes:       f.Notes,
		Origin:      origin,
	}
	var errs []error
	need := func(field string, v *float64, scale float64) float64 {
		if v == nil {
			errs = append(errs, fmt.Errorf("%s: missing", field))
			return 0
		}
		return *v * scale
	}
	opt := func(v *float64, scale float64) float64 {
		if v == nil {
			return 0
		}
		return *v * scale
	}
	numeric := map[string]bool{}
	p.Bandwidth = need("memory_bandwidth_gb_per_s", f.Bandwidth, giga)
	p.Overhead = need("layer_overhead_us", f.Overhead, us)
	p.Efficiency = need("efficiency", f.Efficiency, 1)
	p.DRAMEnergy = opt(f.DRAMEnergy, pico)
	if f.MemEff != nil {
		p.MemoryEfficiency = *f.MemEff
		numeric["memory_efficiency"] = true
		if p.MemoryEfficiency == 0 {
			errs = append(errs, errors.New("memory_efficiency: must be in (0, 1] (or absent), got 0"))
		}
	}
	for _, k := range []string{"memory_bandwidth_gb_per_s", "layer_overhead_us", "efficiency"} {
		numeric[k] = true
	}
	if f.DRAMEnergy != nil {
		numeric["dram_energy_pj_per_byte"] = true
	}
	keys := make([]string, 0, len(f.Precisions))
	for k := range f.Precisions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field := "precisions." + k
		q, err := ParsePrecision(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			continue
		}
		if q.String() != k {
			errs = append(errs, fmt.Errorf("%s: write the key as %q", field, q.String()))
			continue
		}
		raw := f.Precisions[k]
		var obj map[string]json.RawMessage
		var fp filePrecision
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			errs = append(errs, fmt.Errorf("%s: want an object with peak_tops, got %s", field, clip(string(raw))))
			continue
		}
		warnings = append(warnings, unknownKeys(obj, precisionFields, field+".")...)
		if err := json.Unmarshal(raw, &fp); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, jsonx.Error(raw, err)))
			continue
		}
		s := PrecisionSpec{Precision: q, Format: fp.Format}
		if s.Format == "" {
			s.Format = "int"
			if q.W >= 16 || q.A >= 16 {
				s.Format = "fp"
			}
		}
		s.PeakOps = need(field+".peak_tops", fp.PeakTOPS, tera)
		numeric[field+".peak_tops"] = true
		if fp.Efficiency != nil {
			s.Efficiency = *fp.Efficiency
			numeric[field+".efficiency"] = true
			if s.Efficiency == 0 {
				errs = append(errs, fmt.Errorf("%s.efficiency: must be in (0, 1] (or absent), got 0", field))
			}
		}
		if fp.Overhead != nil {
			s.Overhead, s.HasOverhead = *fp.Overhead*us, true
			numeric[field+".layer_overhead_us"] = true
		}
		if fp.EnergyMAC != nil {
			s.EnergyPerMAC = *fp.EnergyMAC * pico
			numeric[field+".energy_pj_per_mac"] = true
		}
		p.Precisions = append(p.Precisions, s)
	}
	for _, k := range sortedKeys(f.ALU) {
		field := "alu." + k
		a := f.ALU[k]
		if k != ALUInt && k != ALUFloat {
			errs = append(errs, fmt.Errorf("%s: want %q or %q", field, ALUInt, ALUFloat))
			continue
		}
		if a == nil {
			errs = append(errs, fmt.Errorf("%s: want an object with gops, add_pj and mul_pj", field))
			continue
		}
		spec := ALUSpec{OpsPerSec: need(field+".gops", a.GOPS, giga), AddEnergy: need(field+".add_pj", a.AddPJ, pico), MulEnergy: need(field+".mul_pj", a.MulPJ, pico)}
		if a.GOPS != nil && !(*a.GOPS > 0) || a.AddPJ != nil && *a.AddPJ < 0 || a.MulPJ != nil && *a.MulPJ < 0 {
			errs = append(errs, fmt.Errorf("%s: gops must be > 0 and energies ≥ 0", field))
		}
		for _, n := range []string{"gops", "add_pj", "mul_pj"} {
			numeric[field+"."+n] = true
		}
		if p.ALU == nil {
			p.ALU = map[string]ALUSpec{}
		}
		p.ALU[k] = spec
	}
	slices.SortFunc(p.Precisions, func(a, b PrecisionSpec) int {
		switch {
		case a.Precision.less(b.Precision):
			return -1
		case b.Precision.less(a.Precision):
			return 1
		}
		return 0
	})
	if len(errs) > 0 {
		return fail(errors.Join(errs...))
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(numeric) {
		if strings.TrimSpace(p.Sources[k]) == "" {
			warnings = append(warnings, fmt.Sprintf("%s has no entry in \"sources\"", k))
		}
	}
	for _, k := range sortedKeys(p.Sources) {
		if !numeric[k] {
			warnings = append(warnings, fmt.Sprintf("sources[%q] names no numeric field of this profile", k))
		}
	}
	p.Warnings = warnings
	return p, nil
}

// Load returns the built-in profile called nameOrPath, or, when nameOrPath
// names a file (it contains a path separator, ends in ".json" or exists),
// parses that file. The error for an unknown name lists the built-in names.
func Load(nameOrPath string) (*Profile, error) {
	if strings.ContainsAny(nameOrPath, `/\`) || strings.HasSuffix(strings.ToLower(nameOrPath), ".json") {
		return LoadFile(nameOrPath)
	}
	if p, err := Builtin(nameOrPath); err == nil {
		return p, nil
	}
	if st, err := os.Stat(nameOrPath); err == nil && !st.IsDir() {
		return LoadFile(nameOrPath)
	}
	return nil, fmt.Errorf("profile %q: not a built-in profile (%s) nor a file", nameOrPath, strings.Join(Names(), ", "))
}

// MaxFileBytes bounds the size of a profile or latency-table file (a
// table of a million layers' latencies fits); a larger file, or one that
// never ends, is refused before it fills memory.
const MaxFileBytes = 1 << 30

// LoadFile parses the profile file at path.
func LoadFile(path string) (*Profile, error) {
	data, err := readfile.Read(path, MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	return Parse(data, filepath.ToSlash(path))
}

//go:embed builtin/*.json
var builtinFS embed.FS

// Names returns the names of the built-in profiles, sorted.
func Names() []string {
	entries, err := fs.ReadDir(builtinFS, "builtin")
	if err != nil {
		panic("profiles: embedded builtin directory missing: " + err.Error())
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Builtin returns a fresh copy of the built-in profile name (see Names).
func Builtin(name string) (*Profile, error) {
	if !validName(name) {
		return nil, fmt.Errorf("profile %q: not a built-in profile (%s)", name, strings.Join(Names(), ", "))
	}
	data, err := builtinFS.ReadFile(path.Join("builtin", name+".json"))
	if err != nil {
		return nil, fmt.Errorf("profile %q: not a built-in profile (%s)", name, strings.Join(Names(), ", "))
	}
	p, err := Parse(data, "builtin/"+name+".json")
	if err != nil {
		return nil, err
	}
	p.Origin = "builtin"
	return p, nil
}

// All returns every built-in profile, in the order of Names.
func All() ([]*Profile, error) {
	var ps []*Profile
	for _, n := range Names() {
		p, err := Builtin(n)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// jsonFields returns the JSON names of a struct's fields, from their tags.
func jsonFields(v any) map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(v)
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	return m
}

func unknownKeys(obj map[string]json.RawMessage, known map[string]bool, prefix string) []string {
	var out []string
	for _, k := range sortedKeys(obj) {
		if !known[k] {
			out = append(out, fmt.Sprintf("unknown field %q ignored (known: %s)", prefix+k, strings.Join(sortedKeys(known), ", ")))
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func clip(s string) string {
	const n = 40
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// MarshalFile returns p in the JSON file format Parse reads (SCHEMA.md),
// indented, with its sources and notes: a fitted profile (Profile.Fit) is
// written with it and read back with Load.
func (p *Profile) MarshalFile() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	num := func(v float64) *float64 { return &v }
	f := fileProfile{
		Name: p.Name, Description: p.Description, Kind: string(p.Kind),
		Bandwidth: num(p.Bandwidth / giga), Overhead: num(p.Overhead / us), Efficiency: num(p.Efficiency),
		Precisions: map[string]json.RawMessage{}, Sources: p.Sources, Notes: p.Notes,
	}
	if p.DRAMEnergy > 0 {
		f.DRAMEnergy = num(p.DRAMEnergy / pico)
	}
	if p.MemoryEfficiency > 0 {
		f.MemEff = num(p.MemoryEfficiency)
	}
	for k, a := range p.ALU {
		if f.ALU == nil {
			f.ALU = map[string]*fileALU{}
		}
		f.ALU[k] = &fileALU{GOPS: num(a.OpsPerSec / giga), AddPJ: num(a.AddEnergy / pico), MulPJ: num(a.MulEnergy / pico)}
	}
	for _, s := range p.Precisions {
		fp := filePrecision{Format: s.Format, PeakTOPS: num(s.PeakOps / tera)}
		if s.Efficiency > 0 {
			fp.Efficiency = num(s.Efficiency)
		}
		if s.EnergyPerMAC > 0 {
			fp.EnergyMAC = num(s.EnergyPerMAC / pico)
		}
		if s.HasOverhead {
			fp.Overhead = num(s.Overhead / us)
		}
		raw, err := json.Marshal(fp)
		if err != nil {
			return nil, err
		}
		f.Precisions[s.Precision.String()] = raw
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
