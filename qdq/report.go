package qdq

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/bitplan/bitplan/internal/table"
)

// header is the column list of the per-layer report.
var header = []string{"layer", "weight", "bits", "stored", "codes", "channels", "bias", "abits", "input", "act stored", "act codes", "scale", "zero point"}

// rows returns one report row per layer.
func (s *Summary) rows() [][]string {
	var out [][]string
	for _, l := range s.Layers {
		codes := fmt.Sprintf("[%d, %d]", l.WeightMin, l.WeightMax)
		if l.Narrowed {
			codes += " narrowed"
		}
		row := []string{l.Name, l.Weight, strconv.Itoa(l.Bits), l.WeightType, codes, strconv.Itoa(l.Channels), l.BiasType,
			strconv.Itoa(l.ABits), l.Input, "float", "", "", ""}
		if l.ABits > 0 {
			ac := fmt.Sprintf("[%d, %d]", l.ActMin, l.ActMax)
			if l.ActNarrowed {
				ac += " clipped"
			}
			row[9], row[10] = l.ActType, ac
			row[11] = strconv.FormatFloat(float64(l.ActScale), 'g', 6, 32)
			row[12] = strconv.FormatInt(l.ActZeroPoint, 10)
		}
		out = append(out, row)
	}
	return out
}

// Write renders the summary: table.Text or table.Markdown (a row per
// layer), table.CSV or table.JSON (the Summary).
func (s *Summary) Write(w io.Writer, f table.Format) error {
	switch f {
	case table.Text, table.Markdown:
		fmt.Fprintf(w, "QDQ model, opset %d; weights %s; activations calibrated %s\n", s.Opset, s.WeightQuantizer, s.Calibration)
		tw := table.New(w, f == table.Markdown, len(header))
		h := make([]any, len(header))
		for i, c := range header {
			h[i] = c
		}
		tw.Header(h...)
		if err := tw.Bulk(s.rows()); err != nil {
			return err
		}
		return tw.Render()
	case table.CSV:
		cw := csv.NewWriter(w)
		if err := cw.WriteAll(append([][]string{header}, s.rows()...)); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	case table.JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	return fmt.Errorf("unexpected output format %q", f)
}
