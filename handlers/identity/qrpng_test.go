package identity

import (
	"bytes"
	"image/png"
	"testing"

	"github.com/boombuler/barcode/qr"
)

// TestQRPNG: the PNG written by hand is one a standard decoder reads, of
// the expected size, and every module of the QR code is where it should
// be, in black or white, with a white quiet zone around it.
func TestQRPNG(t *testing.T) {
	const url = "otpauth://totp/Pommy:someone@example.com?algorithm=SHA1&digits=6&issuer=Pommy&period=30&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	b, err := qrPNG(url)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG a decoder reads: %v", err)
	}
	code, _ := qr.Encode(url, qr.M, qr.Auto)
	n := code.Bounds().Dx()
	side := (n + 2*qrQuietZone) * qrModulePx
	if img.Bounds().Dx() != side || img.Bounds().Dy() != side {
		t.Fatalf("size %v, want %dx%d", img.Bounds(), side, side)
	}
	black := func(x, y int) bool { r, _, _, _ := img.At(x, y).RGBA(); return r == 0 }
	for my := -qrQuietZone; my < n+qrQuietZone; my++ {
		for mx := -qrQuietZone; mx < n+qrQuietZone; mx++ {
			want := false
			if mx >= 0 && my >= 0 && mx < n && my < n {
				r, _, _, _ := code.At(mx, my).RGBA()
				want = r == 0
			}
			// Every pixel of the module, corners included.
			x0, y0 := (mx+qrQuietZone)*qrModulePx, (my+qrQuietZone)*qrModulePx
			for _, p := range [][2]int{{0, 0}, {qrModulePx - 1, 0}, {0, qrModulePx - 1}, {qrModulePx - 1, qrModulePx - 1}, {qrModulePx / 2, qrModulePx / 2}} {
				if got := black(x0+p[0], y0+p[1]); got != want {
					t.Fatalf("module (%d,%d) pixel %v: black %v, want %v", mx, my, p, got, want)
				}
			}
		}
	}
	if len(b) > 4096 {
		t.Errorf("the PNG is %d bytes; a QR code of a TOTP URL compresses to far less", len(b))
	}
}
