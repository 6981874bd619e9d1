package data

import "math"

// This file resizes 8-bit images exactly as Pillow does for
// Image.resize(size, Image.BILINEAR) — which is what torchvision's
// transforms.Resize runs on the PIL images that ImageFolder loads — so that
// bitplan's preprocessed tensors equal torchvision's.
//
// Pillow (src/libImaging/Resample.c, ImagingResample) resizes in two
// separable passes, horizontal then vertical, each writing an 8-bit image.
// For an output index xx of an axis of in → out pixels the filter is
// centred at (xx + ½)·s with s = in/out, and its support is widened by the
// scale when reducing (antialiasing):
//
//	fs = max(s, 1),  support = 1·fs                    (bilinear: support 1)
//	xmin = trunc(centre − support + ½) clamped to ≥ 0
//	xmax = trunc(centre + support + ½) clamped to ≤ in
//	w_x = tri((x − centre + ½)/fs),  tri(t) = max(0, 1 − |t|),  x ∈ [xmin, xmax)
//	w_x ← w_x / Σ w,  then fixed point k_x = round(w_x · 2²²)  (half away from 0)
//	out = clip8((2²¹ + Σ k_x · in_x) >> 22)
//
// golang.org/x/image/draw has a bilinear kernel, but it neither widens the
// support when reducing in the same way nor rounds to 8 bits between the
// passes, so its output differs from Pillow's by several levels; hence this
// implementation. torch's own antialiased interpolation
// (F.interpolate(..., antialias=True), used by torchvision on tensors) uses
// the same weights in floating point without the intermediate rounding; it
// differs from Pillow by at most one level of 255.

// pilPrecision is Pillow's PRECISION_BITS (32 − 8 − 2): fixed-point bits of
// the resampling weights for 8-bit images.
const pilPrecision = 32 - 8 - 2

// axisCoeffs holds, for each output index, the first input index, the count
// of inputs and their fixed-point weights (ksize slots each).
type axisCoeffs struct {
	ksize       int
	first, size []int
	k           []int32
}

// pilBilinearCoeffs is Pillow's precompute_coeffs followed by
// normalize_coeffs_8bpc for the bilinear filter over the whole axis.
func pilBilinearCoeffs(in, out int) axisCoeffs {
	scale := float64(in) / float64(out)
	fs := max(scale, 1)
	support := 1 * fs
	ksize := int(math.Ceil(support))*2 + 1
	c := axisCoeffs{ksize: ksize, first: make([]int, out), size: make([]int, out), k: make([]int32, out*ksize)}
	w := make([]float64, ksize)
	for xx := range out {
		center := (float64(xx) + 0.5) * scale
		ss := 1 / fs
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), in) - xmin
		ww := 0.0
		for x := range xmax {
			t := math.Abs((float64(x+xmin) - center + 0.5) * ss)
			w[x] = 0
			if t < 1 {
				w[x] = 1 - t
			}
			ww += w[x]
		}
		for x := range xmax {
			if ww != 0 {
				w[x] /= ww
			}
			v := w[x] * (1 << pilPrecision)
			if w[x] < 0 {
				c.k[xx*ksize+x] = int32(-0.5 + v)
			} else {
				c.k[xx*ksize+x] = int32(0.5 + v)
			}
		}
		c.first[xx], c.size[xx] = xmin, xmax
	}
	return c
}

// clip8 is Pillow's clip8: the fixed-point sum shifted down and clamped.
func clip8(v int32) uint8 {
	if v <= 0 {
		return 0
	}
	if v >= 1<<(pilPrecision+8) {
		return 255
	}
	return uint8(v >> pilPrecision)
}

// img8 is an 8-bit image with c interleaved channels, row-major (HWC).
type img8 struct {
	w, h, c int
	pix     []uint8
}

// resizePIL returns im resized to w×h with Pillow's antialiased bilinear
// filter (horizontal pass, then vertical, rounding to 8 bits after each).
func resizePIL(im img8, w, h int) img8 {
	if w != im.w {
		im = resizeH(im, w)
	}
	if h != im.h {
		im = resizeV(im, h)
	}
	return im
}

func resizeH(im img8, w int) img8 {
	cf := pilBilinearCoeffs(im.w, w)
	out := img8{w: w, h: im.h, c: im.c, pix: make([]uint8, w*im.h*im.c)}
	for y := range im.h {
		row := im.pix[y*im.w*im.c : (y+1)*im.w*im.c]
		orow := out.pix[y*w*im.c : (y+1)*w*im.c]
		for xx := range w {
			k := cf.k[xx*cf.ksize : xx*cf.ksize+cf.size[xx]]
			base := cf.first[xx] * im.c
			if im.c == 3 {
				// The three channels in one pass over the taps.
				const half = int32(1 << (pilPrecision - 1))
				s0, s1, s2 := half, half, half
				px := row[base : base+3*len(k)]
				for x, kx := range k {
					s0 += int32(px[3*x]) * kx
					s1 += int32(px[3*x+1]) * kx
					s2 += int32(px[3*x+2]) * kx
				}
				orow[3*xx], orow[3*xx+1], orow[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
				continue
			}
			for ch := range im.c {
				s := int32(1 << (pilPrecision - 1))
				for x, kx := range k {
					s += int32(row[base+x*im.c+ch]) * kx
				}
				orow[xx*im.c+ch] = clip8(s)
			}
		}
	}
	return out
}

func resizeV(im img8, h int) img8 {
	cf := pilBilinearCoeffs(im.h, h)
	stride := im.w * im.c
	out := img8{w: im.w, h: h, c: im.c, pix: make([]uint8, h*stride)}
	acc := make([]int32, stride)
	for yy := range h {
		for i := range acc {
			acc[i] = 1 << (pilPrecision - 1)
		}
		k := cf.k[yy*cf.ksize : yy*cf.ksize+cf.size[yy]]
		for y, ky := range k {
			row := im.pix[(cf.first[yy]+y)*stride : (cf.first[yy]+y+1)*stride]
			for i, p := range row {
				acc[i] += int32(p) * ky
			}
		}
		orow := out.pix[yy*stride : (yy+1)*stride]
		for i, s := range acc {
			orow[i] = clip8(s)
		}
	}
	return out
}

// centerCrop is torchvision's F.center_crop: an image smaller than the crop
// is first padded with zeros ((crop − size)//2 before, the rest after), then
// the window starts at round((size − crop)/2) with Python's rounding (half
// to even).
func centerCrop(im img8, w, h int) img8 {
	if w > im.w || h > im.h {
		pl, pt := 0, 0
		nw, nh := im.w, im.h
		if w > im.w {
			pl, nw = (w-im.w)/2, w
		}
		if h > im.h {
			pt, nh = (h-im.h)/2, h
		}
		p := img8{w: nw, h: nh, c: im.c, pix: make([]uint8, nw*nh*im.c)}
		for y := range im.h {
			copy(p.pix[((y+pt)*nw+pl)*im.c:], im.pix[y*im.w*im.c:(y+1)*im.w*im.c])
		}
		im = p
	}
	top := int(math.RoundToEven(float64(im.h-h) / 2))
	left := int(math.RoundToEven(float64(im.w-w) / 2))
	out := img8{w: w, h: h, c: im.c, pix: make([]uint8, w*h*im.c)}
	for y := range h {
		src := ((top+y)*im.w + left) * im.c
		copy(out.pix[y*w*im.c:(y+1)*w*im.c], im.pix[src:src+w*im.c])
	}
	return out
}

// shortSide is torchvision's size rule for Resize(n): the shorter side
// becomes n and the longer int(n·long/short) (truncated).
func shortSide(w, h, n int) (int, int) {
	if w <= h {
		return n, int(float64(n*h) / float64(w))
	}
	return int(float64(n*w) / float64(h)), n
}
