package plan

// Pruning is what a structured-pruning plan (or a joint pruning and
// quantization plan, made by package prune) adds to a Plan. The rest of
// the plan reads as for quantization: the certificate, Layers (with
// Layer.Pruned), and Usage, where a resource's Min is the least value the
// row can take (every prunable group at its fewest kept channels and
// narrowest width) and Max the unpruned model's value (at the widest
// candidate width).
type Pruning struct {
	// Mode is the planner: "ilp", "threshold" or "l1".
	Mode string `json:"mode"`
	// Joint reports a joint pruning and quantization plan.
	Joint bool `json:"joint,omitempty"`
	// ObjectiveStdErr is the standard error of the pruning part of the
	// plan's Objective (channel estimates taken as independent).
	ObjectiveStdErr float64 `json:"objective_stderr,omitempty"`
	// Iterations counts the ILP solves of the linearise–solve–verify loop
	// (the plan's Nodes and SolveSeconds sum them); SearchNodes the exact
	// branch-and-bound's nodes over the true costs.
	Iterations  int `json:"iterations,omitempty"`
	SearchNodes int `json:"search_nodes,omitempty"`
	// ImprovedBy names the stage that improved on the ILP's plan ("local
	// search", "branch-and-bound"), if any.
	ImprovedBy string `json:"improved_by,omitempty"`
	// Groups holds one entry per channel group (heads, rows, channels),
	// in the order of the structure analysis.
	Groups []PruneGroup `json:"groups"`
	// Unprunable lists the groups left intact, with the reasons.
	Unprunable []string `json:"unprunable,omitempty"`
	// Accuracy holds test accuracies when the caller measured them.
	Accuracy *Accuracy `json:"accuracy,omitempty"`
}

// PruneGroup is one group's decision: structures (channels, attention
// heads, FFN rows) removed together from every member unit.
type PruneGroup struct {
	Name  string   `json:"name"`
	Units []string `json:"units"`
	// Channels is the group's number of structures and Kept how many stay.
	Channels int `json:"channels"`
	Kept     int `json:"kept"`
	// KeptChannels are the indices of the structures kept.
	KeptChannels []int `json:"kept_channels"`
	// Directions, for the hidden units of a bidirectional recurrent layer
	// pruned per direction, is the direction count D: channel c is unit
	// c mod (Channels/D) of direction ⌊c·D/Channels⌋, and every direction
	// keeps Kept/D units. For the channels of a grouped convolution (D
	// groups) direction d is group d.
	Directions int `json:"directions,omitempty"`
	// Bits is the weight width in joint mode (0 otherwise).
	Bits int `json:"bits,omitempty"`
	// OmegaPrune is the summed importance of the removed structures, with
	// its standard error; OmegaQuant the members' Ω_quant (joint mode).
	OmegaPrune       float64 `json:"omega_prune"`
	OmegaPruneStdErr float64 `json:"omega_prune_stderr,omitempty"`
	OmegaQuant       float64 `json:"omega_quant,omitempty"`
	Prunable         bool    `json:"prunable"`
}

// LayerPruning is one unit before and after pruning.
type LayerPruning struct {
	// Group names the group of the unit's output channels, if prunable.
	Group string `json:"group,omitempty"`
	// OutChannels and InChannels are [before, after]; InChannels is nil
	// for a unit whose inputs are not pruned.
	OutChannels [2]int  `json:"out_channels"`
	InChannels  *[2]int `json:"in_channels,omitempty"`
	// Params and FLOPs are [before, after].
	Params [2]int64 `json:"params"`
	FLOPs  [2]int64 `json:"flops"`
	// OmegaRemoved is the importance of the unit's removed channels.
	OmegaRemoved float64 `json:"omega_removed"`
}

// Accuracy holds test-set accuracies of the original, pruned and
// fine-tuned models.
type Accuracy struct {
	Samples   int      `json:"samples"`
	Original  float64  `json:"original"`
	Pruned    float64  `json:"pruned"`
	FineTuned *float64 `json:"fine_tuned,omitempty"`
	// Steps is the number of fine-tuning steps.
	Steps int `json:"steps,omitempty"`
}

// Keep returns the kept structure indices of every group of a pruning
// plan (Pruning.Groups order); nil for a quantization plan or when no plan
// was found.
func (p *Plan) Keep() [][]int {
	if p.Pruning == nil || p.Objective == nil {
		return nil
	}
	keep := make([][]int, len(p.Pruning.Groups))
	for i, g := range p.Pruning.Groups {
		keep[i] = g.KeptChannels
	}
	return keep
}
