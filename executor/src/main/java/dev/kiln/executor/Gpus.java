package dev.kiln.executor;

import dev.kiln.cuda.Cuda;

import java.util.ArrayList;
import java.util.List;

/**
 * The GPUs of this JVM's machine, as the CUDA runtime sees them. Asking creates a CUDA context on
 * every device (the runtime's cost, hundreds of MB of device memory each), so Kiln asks only
 * where GPUs are wanted: when an actor is placed on a GPU, and when a worker joins (to advertise
 * them). Never verified on a machine with a GPU.
 */
public final class Gpus {

    private static final System.Logger LOG = System.getLogger("dev.kiln");

    private Gpus() {
    }

    /**
     * @return the free bytes of each device, by device index; empty when CUDA is unavailable (the
     *         reason is logged once at DEBUG) or cannot be asked (logged as a WARNING)
     */
    public static List<Long> freeBytes() {
        if (!Cuda.isAvailable()) {
            LOG.log(System.Logger.Level.DEBUG, () -> "no GPUs: " + Cuda.unavailableReason());
            return List.of();
        }
        List<Long> free = new ArrayList<>();
        try {
            int current = Cuda.device();
            for (int d = 0; d < Cuda.deviceCount(); d++) {
                Cuda.setDevice(d);
                free.add(Cuda.memoryInfo().freeBytes());
            }
            Cuda.setDevice(current);
        } catch (RuntimeException | LinkageError e) {
            LOG.log(System.Logger.Level.WARNING, () -> "cannot read GPU memory; advertising no GPUs: " + e);
            return List.of();
        }
        return List.copyOf(free);
    }

    /**
     * @return why this JVM has no GPUs, for messages: the CUDA runtime's reason, or "none found"
     */
    public static String whyNone() {
        return Cuda.isAvailable() ? "the CUDA runtime reports none" : Cuda.unavailableReason();
    }

    /**
     * Makes {@code device} the calling thread's current CUDA device.
     *
     * @param device the device index
     * @throws IllegalStateException if CUDA is unavailable or the device cannot be set
     */
    public static void use(int device) {
        if (!Cuda.isAvailable()) {
            throw new IllegalStateException("cannot use GPU " + device + ": " + Cuda.unavailableReason());
        }
        Cuda.setDevice(device);
    }
}
