package query

// millis is a timestamp in milliseconds. It is int64; the alias only names the parameter
// of chunkenc.Iterator's Seek(int64) ValueType, which go vet's stdmethods check would
// otherwise take for a wrong io.Seeker.Seek(int64, int) (int64, error).
type millis = int64
