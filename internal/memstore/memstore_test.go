package memstore_test

import (
	"testing"

	"github.com/signald/signald/internal/invite/storetest"
	"github.com/signald/signald/internal/memstore"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend { return memstore.New() })
}
