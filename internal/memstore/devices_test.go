package memstore_test

import (
	"testing"

	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/device/devicetest"
	"github.com/signald/signald/internal/memstore"
	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/push/queuetest"
)

func TestDeviceContract(t *testing.T) {
	devicetest.Run(t, func(t *testing.T) device.Store { return memstore.New() })
}

func TestQueueContract(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) push.Queue { return memstore.New() })
}
