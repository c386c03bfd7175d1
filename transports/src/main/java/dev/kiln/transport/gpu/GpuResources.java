package dev.kiln.transport.gpu;

/**
 * Frees device resources at close, going on past a failure so that one bad handle leaks nothing else:
 * each call returns the first failure, with later ones suppressed on it. A handle of 0 is one that was
 * never made.
 */
final class GpuResources {

    private GpuResources() {
    }

    static RuntimeException free(DeviceOps ops, long pointer, RuntimeException failure) {
        return pointer == 0 ? failure : run(() -> ops.free(pointer), failure);
    }

    static RuntimeException destroyEvent(DeviceOps ops, long event, RuntimeException failure) {
        return event == 0 ? failure : run(() -> ops.destroyEvent(event), failure);
    }

    static RuntimeException destroyStream(DeviceOps ops, long stream, RuntimeException failure) {
        return stream == 0 ? failure : run(() -> ops.destroyStream(stream), failure);
    }

    static RuntimeException run(Runnable step, RuntimeException failure) {
        try {
            step.run();
            return failure;
        } catch (RuntimeException e) {
            if (failure == null) {
                return e;
            }
            failure.addSuppressed(e);
            return failure;
        }
    }
}
