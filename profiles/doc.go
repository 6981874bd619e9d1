// Package profiles holds hardware profiles (embedded data files whose every
// number carries its citation), the per-layer cost models bitplan's planner
// uses for each candidate precision, and measured latency tables that
// override the models.
//
// # Profiles
//
// A profile is a JSON file (schema in SCHEMA.md next to this file):
//
//	{
//	  "name": "t4",
//	  "description": "NVIDIA T4 ...",
//	  "kind": "gpu",                      // gpu, cpu or npu
//	  "memory_bandwidth_gb_per_s": 320,   // peak DRAM bandwidth, 1 GB = 1e9 B
//	  "layer_overhead_us": 5,             // fixed time per layer (kernel launch)
//	  "efficiency": 0.5,                  // achievable fraction of peak compute
//	  "dram_energy_pj_per_byte": 162.5,   // optional
//	  "precisions": {
//	    "w8a8": {"format": "int", "peak_tops": 130, "energy_pj_per_mac": 0.3}
//	  },
//	  "sources": {"precisions.w8a8.peak_tops": "NVIDIA T4 datasheet (2019) ...", ...},
//	  "notes": ["..."]
//	}
//
// Throughput is dense (no 2:4 sparsity) and counted in operations, one
// multiply-accumulate (MAC) being two operations as in datasheets' TOPS and
// TFLOPS; the models use MAC/s = ops/2. A precision "wNaM" has N-bit weights
// and M-bit activations; w16a16 and w32a32 denote FP16 and FP32 unless the
// format says otherwise. "sources" maps every numeric field, by its path, to
// a citation or to the arithmetic that derives it; figures that are not
// published are marked "estimate".
//
// Built-in profiles (Names, Builtin, All): t4, a100, h100, orin (GPU only),
// xeon8380 (AVX-512 VNNI) and sd888-cpu (Cortex-X1/A78 with SDOT). Load
// takes a built-in name or a file path.
//
// # Cost models
//
// Profile.Cost gives, for a Layer and a candidate Precision, the weight size,
// BOPS (HAWQ-V3, arXiv:2011.10680), a roofline latency (Williams, Waterman and
// Patterson, "Roofline: an insightful visual performance model for multicore
// architectures", CACM 52(4), 2009), energy (MAC and DRAM energies after
// Horowitz, "Computing's energy problem", ISSCC 2014) and activation memory.
// A precision the device lacks runs at the narrowest wider pair it has
// (Profile.Resolve); with none, the candidate is removed (ErrUnsupported).
// Profile.CostAll costs a whole model and reports what it assumed.
//
// # Measured tables
//
// A Table (CSV "layer,precision,ms" or JSON, see Table) replaces the latency
// model for the layers and precisions it lists. docs/profiles-validation.md
// compares the T4 roofline with HAWQ-V3's measured T4 latencies.
//
// # Calibrated profiles
//
// Profile.Fit fits a profile's per-precision efficiency and kernel overhead
// and its memory efficiency to a measured Table (see Calibration for the
// model and the fit), reporting the fit error; the fitted Profile is written
// with MarshalFile and read back with Load. `bitplan profiles NAME --fit
// TABLE --layers SENS.json` exposes it. Fitted on half of HAWQ-V3's T4
// layers, the T4 profile predicts the other half within a few percent
// (docs/profiles-validation.md).
package profiles
