package dev.kiln.compiler;

import dev.kiln.graph.internal.GraphInternals;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Node;
import dev.kiln.tensor.DeviceTensor;

import java.util.HashMap;
import java.util.Map;

/** An actor on device tensors and topology helpers for the GPU compiler tests. Nothing here is ever run. */
final class GpuActors {

    static final long MIB = 1 << 20;
    static final long GIB = 1L << 30;

    private GpuActors() {
    }

    /**
     * Methods declared to return {@link DeviceTensor} make GPU edges; {@link #toHost} makes a CPU edge. Parameters
     * are {@code Object}: on an actor without a GPU, a GPU edge delivers the host copy.
     */
    static final class Gpu {
        DeviceTensor load(String s) {
            throw new UnsupportedOperationException(s);
        }

        DeviceTensor f(Object x) {
            return null;
        }

        DeviceTensor add(Object x, Object y) {
            return null;
        }

        DeviceTensor add3(Object x, Object y, Object z) {
            return null;
        }

        String toHost(Object x) {
            return String.valueOf(x);
        }

        String label(String s) {
            return s;
        }

        DeviceTensor scale(Object x, String by) {
            return null;
        }
    }

    /** An actor that reads GPU edges on the host: with a {@code Tensor} parameter, and a wrong {@code DeviceTensor} one. */
    static final class HostReader {
        String sum(dev.kiln.tensor.Tensor t) {
            return String.valueOf(t);
        }

        String strict(DeviceTensor t) {
            return String.valueOf(t);
        }
    }

    /**
     * The node as an {@code Object} node, so that binding it into a {@link Gpu} method instantiates the method at
     * {@code Object}: javac would infer {@code DeviceTensor} from a {@code Node<DeviceTensor>}, and the method
     * reference would then cast to it the host copy that an actor without a GPU receives.
     */
    @SuppressWarnings("unchecked")
    static Node<Object> any(Node<?> node) {
        return (Node<Object>) node;
    }

    static ActorRef<Gpu> gpuActor(int id, String name) {
        return GraphInternals.actorRef(id, name, Gpu.class, TestActors.RUNTIME);
    }

    /** @return a placement on {@code localhost} in JVM {@code process} using GPU {@code device} with {@code free} bytes free */
    static ActorPlacement gpu(String process, int device, long free) {
        return new ActorPlacement("localhost", process, device, free);
    }

    /** @return a placement on {@code localhost} in JVM {@code process} using GPU {@code device} (known there by that index) */
    static ActorPlacement gpu(String process, int device, String uuid, long free) {
        return new ActorPlacement("localhost", process, device, uuid, free);
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

        Topology topology(Topology.PeerAccess peerAccess) {
            return new Topology(ActorPlacement.IN_DRIVER, placements, peerAccess);
        }
    }

    static Places places() {
        return new Places();
    }
}
