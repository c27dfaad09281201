package identity

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"

	"github.com/boombuler/barcode/qr"
)

// qrPNG draws content as a QR code (error correction M) in a PNG: black
// modules on white, qrModulePx pixels a module, with the four-module quiet
// zone the standard asks for. The PNG is written here, 1 bit a pixel,
// rather than by image/png: the QR matrix (boombuler/barcode, which
// pquerna/otp's Key.Image uses too) costs the worker 31 KB gzip, and
// image/png with barcode.Scale 74 KB more, for an image that is only ever
// black and white squares (docs/decisions.md, "TOTP").
func qrPNG(content string) ([]byte, error) {
	code, err := qr.Encode(content, qr.M, qr.Auto)
	if err != nil {
		return nil, err
	}
	n := code.Bounds().Dx()
	side := (n + 2*qrQuietZone) * qrModulePx
	stride := (side + 7) / 8
	raw := make([]byte, 0, side*(1+stride))
	row := make([]byte, stride)
	for py := range side {
		my := py/qrModulePx - qrQuietZone
		for i := range row {
			row[i] = 0xff // white
		}
		if my >= 0 && my < n {
			for px := range side {
				mx := px/qrModulePx - qrQuietZone
				if mx < 0 || mx >= n {
					continue
				}
				if r, _, _, _ := code.At(mx, my).RGBA(); r == 0 {
					row[px/8] &^= 0x80 >> (px % 8)
				}
			}
		}
		raw = append(raw, 0) // filter: none
		raw = append(raw, row...)
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(side))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(side))
	ihdr = append(ihdr, 1, 0, 0, 0, 0) // 1-bit greyscale, deflate, adaptive filtering, no interlace
	pngChunk(&out, "IHDR", ihdr)
	pngChunk(&out, "IDAT", z.Bytes())
	pngChunk(&out, "IEND", nil)
	return out.Bytes(), nil
}

const (
	qrModulePx  = 6
	qrQuietZone = 4
)

func pngChunk(w *bytes.Buffer, typ string, data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	w.Write(n[:])
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	w.WriteString(typ)
	w.Write(data)
	binary.BigEndian.PutUint32(n[:], crc.Sum32())
	w.Write(n[:])
}
