package intake

import (
	"errors"
	"strings"
	"testing"

	"postbox/kasse"
)

// A leftover of a lost creation answer (0 bytes, next to a complete copy
// of the same name and size) is named as such; nothing is dropped, and a
// file that is really still missing keeps its own message.
func TestCheckSubmittableNamesEmptyDuplicate(t *testing.T) {
	done := DraftFile{ID: "a", FileName: "befund.pdf", Size: 5000, Offset: 5000, State: FileComplete}
	for _, tc := range []struct {
		name  string
		files []DraftFile
		want  string // "" : submittable
	}{
		{"empty copy of a complete file", []DraftFile{done, {ID: "b", FileName: "befund.pdf", Size: 5000, State: FileUploading}},
			"„befund.pdf“ steht zweimal in der Liste"},
		{"empty copy listed first", []DraftFile{{ID: "b", FileName: "befund.pdf", Size: 5000, State: FileUploading}, done},
			"„befund.pdf“ steht zweimal in der Liste"},
		{"same name, other size: another file still uploading", []DraftFile{done, {ID: "b", FileName: "befund.pdf", Size: 6000, State: FileUploading}},
			"„befund.pdf“ wird noch hochgeladen (0 %)"},
		{"copy with bytes is a resumable upload", []DraftFile{done, {ID: "b", FileName: "befund.pdf", Size: 5000, Offset: 100, State: FileUploading}},
			"„befund.pdf“ wird noch hochgeladen (2 %)"},
		{"one complete file", []DraftFile{done}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSubmittable(tc.files, kasse.DefaultSettings())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var se *SubmitError
			if !errors.As(err, &se) || se.Reason != SubmitNotReady || !strings.Contains(se.Detail, tc.want) {
				t.Fatalf("got %v, want not_ready with %q", err, tc.want)
			}
		})
	}
}
