package data

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // JPEG decoder for image folders
	_ "image/png"  // PNG decoder for image folders
	"io"
	"strings"

	_ "golang.org/x/image/bmp"  // BMP decoder for image folders
	_ "golang.org/x/image/tiff" // TIFF decoder for image folders
	_ "golang.org/x/image/webp" // WebP decoder for image folders
)

// Layout is the order of an image sample's dimensions.
type Layout string

// The two image layouts: channels first (PyTorch) or last (TensorFlow).
const (
	NCHW Layout = "NCHW"
	NHWC Layout = "NHWC"
)

// Preprocess turns a decoded image into a model input the way torchvision's
// transforms do, in this order: convert to RGB (or, with Gray, to Pillow's
// "L"), Resize, CenterCrop, ToTensor (bytes/255), Normalize ((x − mean)/std
// per channel), laid out as Layout. The zero value converts to RGB and
// scales to [0, 1] with no resizing or cropping.
type Preprocess struct {
	// Resize is [height, width]: with width 0 the shorter side becomes
	// height and the other keeps the aspect ratio (torchvision's
	// Resize(int)); both 0 means no resizing. Bilinear with antialiasing,
	// exactly as Pillow's Image.resize(size, BILINEAR).
	Resize [2]int
	// Crop is [height, width] of torchvision's CenterCrop (zero padding when
	// the image is smaller); both 0 means no cropping.
	Crop [2]int
	// Mean and Std have one value per channel (or one for all channels);
	// nil means 0 and 1.
	Mean, Std []float64
	// Layout is NCHW (the default when empty) or NHWC.
	Layout Layout
	// Gray converts to one channel with Pillow's "L" formula
	// (0.299 R + 0.587 G + 0.114 B in 16-bit fixed point) instead of RGB.
	Gray bool
}

// ImageNet is torchvision's standard evaluation transform for ImageNet
// classifiers: Resize(256) (bilinear, antialiased), CenterCrop(224),
// ToTensor, Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]).
var ImageNet = Preprocess{
	Resize: [2]int{256, 0},
	Crop:   [2]int{224, 224},
	Mean:   []float64{0.485, 0.456, 0.406},
	Std:    []float64{0.229, 0.224, 0.225},
	Layout: NCHW,
}

// maxImagePixels bounds the pixels of a decoded image (and of a resize or
// crop target), so that a corrupt header cannot make the decoder allocate
// without bound: 2²⁸ pixels (768 MiB of RGB bytes).
const maxImagePixels = 1 << 28

// channels is the number of channels of the preprocessed sample.
func (p *Preprocess) channels() int {
	if p.Gray {
		return 1
	}
	return 3
}

// Check reports an invalid setting: negative sizes, a width without a
// height, non-positive Std, per-channel values of the wrong count, an
// unknown layout.
func (p *Preprocess) Check() error {
	for _, s := range []struct {
		name string
		v    [2]int
	}{{"resize", p.Resize}, {"crop", p.Crop}} {
		if s.v[0] < 0 || s.v[1] < 0 || (s.v[0] == 0 && s.v[1] != 0) {
			return fmt.Errorf("%s %dx%d: want positive HEIGHTxWIDTH or one positive size", s.name, s.v[0], s.v[1])
		}
		if s.v[0]*max(s.v[1], s.v[0]) > maxImagePixels {
			return fmt.Errorf("%s %dx%d: more than %d pixels", s.name, s.v[0], s.v[1], maxImagePixels)
		}
	}
	c := p.channels()
	for _, s := range []struct {
		name string
		v    []float64
	}{{"mean", p.Mean}, {"std", p.Std}} {
		if s.v != nil && len(s.v) != 1 && len(s.v) != c {
			return fmt.Errorf("%s has %d values, want 1 or %d (one per channel)", s.name, len(s.v), c)
		}
	}
	for _, v := range p.Std {
		if !(v > 0) {
			return fmt.Errorf("std %v: want positive values", p.Std)
		}
	}
	if p.Layout != "" && p.Layout != NCHW && p.Layout != NHWC {
		return fmt.Errorf("layout %q, want %s or %s", p.Layout, NCHW, NHWC)
	}
	return nil
}

// outSize returns the sample's height and width for a w×h source image.
func (p *Preprocess) outSize(w, h int) (int, int) {
	switch {
	case p.Resize[0] > 0 && p.Resize[1] > 0:
		h, w = p.Resize[0], p.Resize[1]
	case p.Resize[0] > 0:
		w, h = shortSide(w, h, p.Resize[0])
	}
	if p.Crop[0] > 0 {
		h, w = p.Crop[0], p.Crop[1]
		if w == 0 {
			w = h
		}
	}
	return h, w
}

// SampleShape returns the sample shape for a w×h source image:
// [C H W] for NCHW, [H W C] for NHWC.
func (p *Preprocess) SampleShape(w, h int) []int {
	oh, ow := p.outSize(w, h)
	if p.Layout == NHWC {
		return []int{oh, ow, p.channels()}
	}
	return []int{p.channels(), oh, ow}
}

// Apply preprocesses a decoded image into dst, which must hold
// prod(SampleShape(w, h)) values.
func (p *Preprocess) Apply(im image.Image, dst []float64) error {
	px, err := to8(im, p.Gray)
	if err != nil {
		return err
	}
	return p.apply(px, dst)
}

func (p *Preprocess) apply(px img8, dst []float64) error {
	switch {
	case p.Resize[0] > 0 && p.Resize[1] > 0:
		px = resizePIL(px, p.Resize[1], p.Resize[0])
	case p.Resize[0] > 0:
		w, h := shortSide(px.w, px.h, p.Resize[0])
		if w < 1 || h < 1 || w*h > maxImagePixels {
			return fmt.Errorf("a %dx%d image resized to shorter side %d is %dx%d", px.w, px.h, p.Resize[0], w, h)
		}
		px = resizePIL(px, w, h)
	}
	if p.Crop[0] > 0 {
		w := p.Crop[1]
		if w == 0 {
			w = p.Crop[0]
		}
		px = centerCrop(px, w, p.Crop[0])
	}
	if len(dst) != px.w*px.h*px.c {
		return fmt.Errorf("image becomes %dx%dx%d, the sample buffer holds %d values", px.c, px.h, px.w, len(dst))
	}
	// ToTensor and Normalize in float32, as torchvision computes them, so
	// that equal bytes give bitwise equal tensors.
	var mean, std [3]float32
	for ch := range px.c {
		mean[ch], std[ch] = 0, 1
		if p.Mean != nil {
			mean[ch] = float32(p.Mean[min(ch, len(p.Mean)-1)])
		}
		if p.Std != nil {
			std[ch] = float32(p.Std[min(ch, len(p.Std)-1)])
		}
	}
	hw := px.w * px.h
	for i := range hw {
		for ch := range px.c {
			v := float32(px.pix[i*px.c+ch]) / 255
			v = float32(v-mean[ch]) / std[ch]
			if p.Layout == NHWC {
				dst[i*px.c+ch] = float64(v)
			} else {
				dst[ch*hw+i] = float64(v)
			}
		}
	}
	return nil
}

// decodeImage decodes a JPEG, PNG, BMP, TIFF or WebP image, refusing
// images of more than maxImagePixels before decoding their pixels.
func decodeImage(r io.ReadSeeker) (image.Image, error) {
	cfg, format, err := image.DecodeConfig(r)
	if err != nil {
		return nil, decodeErr(err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxImagePixels {
		return nil, fmt.Errorf("%s image of %dx%d pixels, want 1 to %d pixels", format, cfg.Width, cfg.Height, maxImagePixels)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	im, _, err := image.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", format, decodeErr(err))
	}
	return im, nil
}

func decodeErr(err error) error {
	switch {
	case errors.Is(err, image.ErrFormat):
		return errors.New("not a JPEG, PNG, BMP, TIFF or WebP image")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), strings.Contains(err.Error(), "short Huffman data"):
		return fmt.Errorf("truncated image (%v)", err)
	}
	return err
}

// to8 converts a decoded image to 8-bit RGB (or gray), as Pillow's
// Image.convert("RGB") (or "L") does: alpha is dropped, not composited;
// 16-bit samples keep their high byte.
func to8(im image.Image, gray bool) (img8, error) {
	b := im.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 || w*h > maxImagePixels {
		return img8{}, fmt.Errorf("image of %dx%d pixels, want 1 to %d pixels", w, h, maxImagePixels)
	}
	c := 3
	if gray {
		c = 1
	}
	out := img8{w: w, h: h, c: c, pix: make([]uint8, w*h*c)}
	if g, ok := im.(*image.Gray); ok && gray {
		for y := range h {
			copy(out.pix[y*w:(y+1)*w], g.Pix[y*g.Stride:y*g.Stride+w])
		}
		return out, nil
	}
	put := func(i int, r, g, bl uint8) {
		if gray {
			// Pillow's L24: (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16.
			out.pix[i] = uint8((19595*uint32(r) + 38470*uint32(g) + 7471*uint32(bl) + 0x8000) >> 16)
			return
		}
		out.pix[3*i], out.pix[3*i+1], out.pix[3*i+2] = r, g, bl
	}
	switch m := im.(type) {
	case *image.YCbCr:
		cb, cr := upsampleChroma(m)
		for y := range h {
			for x := range w {
				yi := m.YOffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := yccToRGB(m.Y[yi], cb[y*w+x], cr[y*w+x])
				put(y*w+x, r, g, bl)
			}
		}
	case *image.Gray:
		for y := range h {
			for x := range w {
				v := m.Pix[y*m.Stride+x]
				put(y*w+x, v, v, v)
			}
		}
	case *image.NRGBA:
		for y := range h {
			for x := range w {
				p := m.Pix[y*m.Stride+4*x:]
				put(y*w+x, p[0], p[1], p[2])
			}
		}
	case *image.RGBA:
		for y := range h {
			for x := range w {
				p := m.Pix[y*m.Stride+4*x:]
				put(y*w+x, p[0], p[1], p[2])
			}
		}
	case *image.Paletted:
		pal := make([][3]uint8, len(m.Palette))
		for i, col := range m.Palette {
			if n, ok := col.(color.NRGBA); ok {
				pal[i] = [3]uint8{n.R, n.G, n.B}
			} else {
				r, g, bl, _ := col.RGBA()
				pal[i] = [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8)}
			}
		}
		for y := range h {
			for x := range w {
				k := int(m.Pix[y*m.Stride+x])
				if k >= len(pal) {
					return img8{}, fmt.Errorf("palette index %d at (%d, %d) outside the palette of %d colours", k, x, y, len(pal))
				}
				put(y*w+x, pal[k][0], pal[k][1], pal[k][2])
			}
		}
	default:
		// 16-bit and other models: un-premultiplied 8-bit values.
		for y := range h {
			for x := range w {
				n := color.NRGBA64Model.Convert(im.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA64)
				put(y*w+x, uint8(n.R>>8), uint8(n.G>>8), uint8(n.B>>8))
			}
		}
	}
	return out, nil
}

// imageExtensions are the file name extensions of torchvision's
// IMG_EXTENSIONS; ImageFolder skips files without one of them.
var imageExtensions = []string{".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}

// hasImageExtension reports whether name ends in one of imageExtensions
// (case-insensitively, as torchvision checks).
func hasImageExtension(name string) bool {
	l := strings.ToLower(name)
	for _, e := range imageExtensions {
		if strings.HasSuffix(l, e) {
			return true
		}
	}
	return false
}

// upsampleChroma returns full-resolution Cb and Cr planes (w·h each) of a
// decoded JPEG the way libjpeg does by default (do_fancy_upsampling): a
// triangle filter for 4:2:0 (h2v2_fancy_upsample) and 4:2:2
// (h2v1_fancy_upsample), with libjpeg's roundings and edge replication.
// Go's image/jpeg instead repeats each chroma sample, which moves colour
// edges by a pixel and differs from Pillow's decoding by tens of levels
// there. Other ratios repeat samples, as Go does.
func upsampleChroma(m *image.YCbCr) (cb, cr []uint8) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	cb, cr = make([]uint8, w*h), make([]uint8, w*h)
	dw, dh := (w+1)/2, (h+1)/2
	fancy := b.Min == (image.Point{}) && dw >= 2 &&
		(m.SubsampleRatio == image.YCbCrSubsampleRatio420 || m.SubsampleRatio == image.YCbCrSubsampleRatio422)
	if !fancy {
		for y := range h {
			for x := range w {
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				cb[y*w+x], cr[y*w+x] = m.Cb[ci], m.Cr[ci]
			}
		}
		return cb, cr
	}
	row := make([]uint8, 2*dw)
	for _, pl := range []struct{ in, out []uint8 }{{m.Cb, cb}, {m.Cr, cr}} {
		in := func(x, y int) int { return int(pl.in[y*m.CStride+x]) }
		for y := range h {
			if m.SubsampleRatio == image.YCbCrSubsampleRatio422 {
				// h2v1_fancy_upsample.
				row[0] = uint8(in(0, y))
				row[1] = uint8((in(0, y)*3 + in(1, y) + 2) >> 2)
				for cx := 1; cx < dw-1; cx++ {
					v := in(cx, y) * 3
					row[2*cx] = uint8((v + in(cx-1, y) + 1) >> 2)
					row[2*cx+1] = uint8((v + in(cx+1, y) + 2) >> 2)
				}
				row[2*dw-2] = uint8((in(dw-1, y)*3 + in(dw-2, y) + 1) >> 2)
				row[2*dw-1] = uint8(in(dw-1, y))
			} else {
				// h2v2_fancy_upsample: the nearest chroma row weighs 3, the
				// next nearest (above for even rows, below for odd) 1;
				// rows beyond the image repeat the edge row.
				cy := y / 2
				ny := cy - 1
				if y%2 == 1 {
					ny = cy + 1
				}
				ny = min(max(ny, 0), dh-1)
				col := func(cx int) int { return in(cx, cy)*3 + in(cx, ny) }
				this, next := col(0), col(1)
				row[0] = uint8((this*4 + 8) >> 4)
				row[1] = uint8((this*3 + next + 7) >> 4)
				last := this
				this = next
				for cx := 1; cx < dw-1; cx++ {
					next = col(cx + 1)
					row[2*cx] = uint8((this*3 + last + 8) >> 4)
					row[2*cx+1] = uint8((this*3 + next + 7) >> 4)
					last, this = this, next
				}
				row[2*dw-2] = uint8((this*3 + last + 8) >> 4)
				row[2*dw-1] = uint8((this*4 + 7) >> 4)
			}
			copy(pl.out[y*w:(y+1)*w], row[:w])
		}
	}
	return cb, cr
}

// yccToRGB is libjpeg's ycc_rgb_convert (jdcolor.c): JFIF YCbCr to RGB
// with 16-bit fixed-point constants rounded as libjpeg rounds them (Go's
// color.YCbCrToRGB rounds differently and can differ by one level).
func yccToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	const (
		half = 1 << 15
		crR  = 91881  // FIX(1.40200)
		cbG  = 22554  // FIX(0.34414)
		crG  = 46802  // FIX(0.71414)
		cbB  = 116130 // FIX(1.77200)
	)
	c, d := int32(cb)-128, int32(cr)-128
	yy := int32(y)
	r := yy + (crR*d+half)>>16
	g := yy + (-cbG*c-crG*d+half)>>16
	bl := yy + (cbB*c+half)>>16
	return clamp8(r), clamp8(g), clamp8(bl)
}

func clamp8(v int32) uint8 {
	return uint8(min(max(v, 0), 255))
}
