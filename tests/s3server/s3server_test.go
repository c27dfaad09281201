package s3server

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestStartPutGetRestart(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	c := s.Client()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("a/b.txt"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}
	get := func() string {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("a/b.txt")})
		if err != nil {
			t.Fatalf("get: %v\n%s", err, s.Logs())
		}
		defer out.Body.Close()
		b, _ := io.ReadAll(out.Body)
		return string(b)
	}
	if got := get(); got != "hello" {
		t.Errorf("got %q", got)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "hello" {
		t.Errorf("after restart got %q", got)
	}
}
