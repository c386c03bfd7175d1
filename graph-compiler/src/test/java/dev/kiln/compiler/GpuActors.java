package dev.kiln.compiler;

import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.ActorRef;
import dev.kiln.tensor.DeviceTensor;

import java.util.HashMap;
import java.util.Map;

/** An actor on device tensors and topology helpers for the GPU compiler tests. Nothing here is ever run. */
final class GpuActors {

    static final long MIB = 1 << 20;
    static final long GIB = 1L << 30;

    private GpuActors() {
    }

    /** Methods declared to return {@link DeviceTensor} make GPU edges; {@link #toHost} makes a CPU edge. */
    static final class Gpu {
        DeviceTensor load(String s) {
            throw new UnsupportedOperationException(s);
        }

        DeviceTensor f(DeviceTensor x) {
            return x;
        }

        DeviceTensor add(DeviceTensor x, DeviceTensor y) {
            return x;
        }

        DeviceTensor add3(DeviceTensor x, DeviceTensor y, DeviceTensor z) {
            return x;
        }

        String toHost(DeviceTensor x) {
            return x.toString();
        }

        String label(String s) {
            return s;
        }

        DeviceTensor scale(DeviceTensor x, String by) {
            return x;
        }
    }

    static ActorRef<Gpu> gpuActor(int id, String name) {
        return new ActorRef<>(id, name, Gpu.class, TestActors.RUNTIME);
    }

    /** @return a placement on {@code localhost} in JVM {@code process} using GPU {@code device} with {@code free} bytes free */
    static ActorPlacement gpu(String process, int device, long free) {
        return new ActorPlacement("localhost", process, device, free);
    }

    /** @return a placement in the driver's JVM on GPU {@code device} with 16 GiB free */
    static ActorPlacement gpu(int device) {
        return gpu("driver", device, 16 * GIB);
    }

    /** Builds a topology with the driver in its JVM without a GPU. */
    static final class Places {
        private final Map<Integer, ActorPlacement> placements = new HashMap<>();

        Places put(ActorRef<?> actor, ActorPlacement placement) {
            placements.put(actor.id(), placement);
            return this;
        }

        Topology topology() {
            return new Topology(ActorPlacement.IN_DRIVER, placements);
        }
    }

    static Places places() {
        return new Places();
    }
}
