package block

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// PartialUploadThresholdAge is how old a block directory without meta.json (a partial
// upload) must be before the compactor may delete it, measured from its oldest object.
const PartialUploadThresholdAge = 48 * time.Hour

// IsBlockDir reports whether name, a top-level bucket entry or a local directory name
// with or without a trailing slash, is a block directory, and returns its ULID. Anything
// else (debug/, tmp directories, files) is not a block.
func IsBlockDir(name string) (ulid.ULID, bool) {
	name = strings.TrimSuffix(name, "/")
	if strings.Contains(name, "/") {
		return ulid.ULID{}, false
	}
	id, err := ulid.ParseStrict(name)
	if err != nil {
		return ulid.ULID{}, false
	}
	return id, true
}

// ListBlockIDs returns the IDs of all top-level block directories in bkt, complete or
// partial, in bucket order. Other entries are ignored.
func ListBlockIDs(ctx context.Context, bkt objstore.BucketReader) ([]ulid.ULID, error) {
	var ids []ulid.ULID
	err := bkt.Iter(ctx, "", func(name string) error {
		if !strings.HasSuffix(name, "/") {
			return nil
		}
		if id, ok := IsBlockDir(name); ok {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blocks in bucket: %w", err)
	}
	return ids, nil
}

// MetaExists reports whether block id has a meta.json in bkt, that is whether it is a
// complete upload.
func MetaExists(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (bool, error) {
	name := path.Join(id.String(), MetaFilename)
	ok, err := bkt.Exists(ctx, name)
	if err != nil {
		return false, fmt.Errorf("check whether %s exists: %w", name, err)
	}
	return ok, nil
}

// IsPartial reports whether block id is a partial upload: it has objects but no meta.json.
// A block with no objects at all is not partial.
func IsPartial(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (bool, error) {
	ok, err := MetaExists(ctx, bkt, id)
	if err != nil || ok {
		return false, err
	}
	empty := true
	// A block directory has only a handful of top-level entries, so list them all rather
	// than stop early with an error the instrumented bucket would count as a failure.
	err = bkt.Iter(ctx, id.String()+"/", func(string) error {
		empty = false
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("list block %s: %w", id, err)
	}
	return !empty, nil
}

// ListPartialBlocks returns the block directories in bkt that have no meta.json.
func ListPartialBlocks(ctx context.Context, bkt objstore.BucketReader) ([]ulid.ULID, error) {
	ids, err := ListBlockIDs(ctx, bkt)
	if err != nil {
		return nil, err
	}
	var partial []ulid.ULID
	for _, id := range ids {
		ok, err := MetaExists(ctx, bkt, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			partial = append(partial, id)
		}
	}
	return partial, nil
}

// ReadMetaFromBucket reads and checks block id's meta.json. A missing meta.json (no
// block, or a partial upload) returns ErrMetaNotFound (wrapped).
func ReadMetaFromBucket(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (*Meta, error) {
	name := path.Join(id.String(), MetaFilename)
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("read %s: %w", name, ErrMetaNotFound)
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer rc.Close()
	m, err := DecodeMeta(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if m.ULID != id {
		return nil, fmt.Errorf("read %s: meta.json is for block %s", name, m.ULID)
	}
	return m, nil
}
