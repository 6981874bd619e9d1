// Package table builds the report tables every bitplan command prints:
// ASCII borders for the terminal or Markdown, the first column left-aligned
// and the others right-aligned (numbers), headers as written.
package table

import (
	"fmt"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// New returns a table writer with ncol columns writing to w, as Markdown
// when markdown is set and with ASCII borders otherwise.
func New(w io.Writer, markdown bool, ncol int) *tablewriter.Table {
	align := make([]tw.Align, ncol)
	for i := range align {
		align[i] = tw.AlignRight
	}
	if ncol > 0 {
		align[0] = tw.AlignLeft
	}
	var r tw.Renderer
	if markdown {
		r = renderer.NewMarkdown()
	} else {
		r = renderer.NewBlueprint(tw.Rendition{Symbols: tw.NewSymbols(tw.StyleASCII)})
	}
	return tablewriter.NewTable(w,
		tablewriter.WithRenderer(r),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithHeaderAlignmentConfig(tw.CellAlignment{PerColumn: align}),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: align}),
	)
}

// Format is an output format of a report.
type Format string

// The report formats.
const (
	Text     Format = "table"
	Markdown Format = "markdown"
	CSV      Format = "csv"
	JSON     Format = "json"
)

// ParseFormat checks a --format value: table (or text), markdown (or md),
// csv or json.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case Text, Markdown, CSV, JSON:
		return f, nil
	case "text":
		return Text, nil
	case "md":
		return Markdown, nil
	}
	return "", fmt.Errorf("unknown format %q: want table, json, csv or markdown", s)
}
