package bench

import (
	"context"
	"errors"
)

func stepEvents(ctx context.Context, r *run) error { return errors.New("not built yet") }
func stepMixed(ctx context.Context, r *run) error  { return errors.New("not built yet") }
