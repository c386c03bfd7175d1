package dev.kiln.compiler;

import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.compiler.Topology.PeerAccess;
import dev.kiln.compiler.Topology.PeerAccess.Link;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.HashSet;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(30)
class TopologyTest {

    @Test
    void twoArgumentPlacementHasNoGpu() {
        ActorPlacement p = new ActorPlacement("h", "w1");
        assertEquals(new ActorPlacement("h", "w1", ActorPlacement.NO_GPU, 0), p);
        assertFalse(p.hasGpu());
        assertEquals("h/w1", p.toString());
        assertEquals(new ActorPlacement("localhost", "driver"), ActorPlacement.IN_DRIVER);
        assertEquals("localhost/driver", ActorPlacement.IN_DRIVER.toString());
    }

    @Test
    void gpuPlacement() {
        ActorPlacement p = new ActorPlacement("h", "w1", 3, 1 << 30);
        assertTrue(p.hasGpu());
        assertEquals(3, p.device());
        assertEquals(1 << 30, p.freeDeviceBytes());
        assertEquals("h/w1/gpu3", p.toString());
        assertEquals("gpu3", p.deviceUuid(), "the four-argument constructor names the device by its index");
        assertEquals(new ActorPlacement("h", "w1", 3, "gpu3", 1 << 30), p);
        assertNull(new ActorPlacement("h", "w1").deviceUuid());
        assertNull(new ActorPlacement("h", "w1", ActorPlacement.NO_GPU, 0).deviceUuid());
    }

    @Test
    void oneGpuNumberedDifferentlyInTwoJvmsIsOneDevice() {
        ActorPlacement inW1 = new ActorPlacement("h", "w1", 0, "GPU-aa", 100);
        ActorPlacement inW2 = new ActorPlacement("h", "w2", 1, "GPU-aa", 90);
        assertTrue(inW1.sameDevice(inW2));
        assertTrue(inW2.sameDevice(inW1));
        assertEquals("h/w2/gpu1", inW2.toString(), "shown as its JVM numbers it");
        assertFalse(inW1.sameDevice(new ActorPlacement("h2", "w1", 0, "GPU-aa", 100)), "UUIDs are per host here");
    }

    @Test
    void twoGpusWithOneIndexInTwoJvmsAreTwoDevices() {
        ActorPlacement inW1 = new ActorPlacement("h", "w1", 0, "GPU-aa", 100);
        ActorPlacement inW2 = new ActorPlacement("h", "w2", 0, "GPU-bb", 100);
        assertFalse(inW1.sameDevice(inW2));
        assertEquals(inW1.toString().replace("w1", "w2"), inW2.toString(), "same index, so the same text");
    }

    @Test
    void sameProcessIgnoresDevicesAndSameDeviceIgnoresProcesses() {
        ActorPlacement gpu0 = new ActorPlacement("h", "w1", 0, 100);
        ActorPlacement gpu1 = new ActorPlacement("h", "w1", 1, 100);
        ActorPlacement otherJvmGpu0 = new ActorPlacement("h", "w2", 0, 50);
        ActorPlacement otherHostGpu0 = new ActorPlacement("h2", "w1", 0, 100);
        ActorPlacement cpu = new ActorPlacement("h", "w1");
        assertNotEquals(gpu0, gpu1);
        assertTrue(gpu0.sameProcess(gpu1));
        assertTrue(gpu0.sameProcess(cpu));
        assertFalse(gpu0.sameProcess(otherJvmGpu0));
        assertFalse(gpu0.sameProcess(otherHostGpu0));
        assertTrue(gpu0.sameDevice(otherJvmGpu0));
        assertFalse(gpu0.sameDevice(gpu1));
        assertFalse(gpu0.sameDevice(otherHostGpu0));
        assertFalse(cpu.sameDevice(cpu), "no GPU is not a shared GPU");
    }

    @Test
    void invalidPlacementsAreRejected() {
        assertEquals("device must be >= 0, or NO_GPU (-1), got -2", assertThrows(IllegalArgumentException.class,
                () -> new ActorPlacement("h", "p", -2, 0)).getMessage());
        assertEquals("freeDeviceBytes must be >= 0, got -1", assertThrows(IllegalArgumentException.class,
                () -> new ActorPlacement("h", "p", 0, -1)).getMessage());
        assertEquals("a placement without a GPU has no free device memory, got 5", assertThrows(
                IllegalArgumentException.class, () -> new ActorPlacement("h", "p", -1, 5)).getMessage());
        assertThrows(NullPointerException.class, () -> new ActorPlacement(null, "p"));
        assertThrows(NullPointerException.class, () -> new ActorPlacement("h", null));
        assertEquals("a placement on gpu0 needs the device's UUID, got null", assertThrows(IllegalArgumentException.class,
                () -> new ActorPlacement("h", "p", 0, null, 1)).getMessage());
        assertEquals("a placement on gpu2 needs the device's UUID, got \" \"", assertThrows(
                IllegalArgumentException.class, () -> new ActorPlacement("h", "p", 2, " ", 1)).getMessage());
        assertEquals("a placement without a GPU has no device UUID, got GPU-aa", assertThrows(
                IllegalArgumentException.class, () -> new ActorPlacement("h", "p", -1, "GPU-aa", 0)).getMessage());
    }

    @Test
    void peerAccessAllNoneAndListedPairs() {
        assertTrue(PeerAccess.ALL.has("h", "x", "y"));
        assertFalse(PeerAccess.NONE.has("h", "x", "y"));
        assertTrue(PeerAccess.NONE.has("h", "x", "x"), "a device reaches its own memory");

        PeerAccess some = PeerAccess.of(Set.of(new Link("h", "y", "x")));
        assertTrue(some.has("h", "x", "y"), "links are unordered");
        assertTrue(some.has("h", "y", "x"));
        assertFalse(some.has("h", "x", "z"));
        assertFalse(some.has("h2", "x", "y"), "a link belongs to its host");
        assertEquals(new Link("h", "x", "y"), new Link("h", "y", "x"));
        assertEquals("x", new Link("h", "y", "x").uuidA());
        assertEquals(PeerAccess.of(Set.of(new Link("h", "x", "y"))), some);
    }

    @Test
    void peerAccessChecksItsValues() {
        assertEquals("a link joins two different devices, got x twice", assertThrows(IllegalArgumentException.class,
                () -> new Link("h", "x", "x")).getMessage());
        assertThrows(NullPointerException.class, () -> new Link("h", null, "x"));
        assertEquals("PeerAccess.ALL takes no links, got 1", assertThrows(IllegalArgumentException.class,
                () -> new PeerAccess(true, Set.of(new Link("h", "x", "y")))).getMessage());
        Set<Link> links = new HashSet<>(Set.of(new Link("h", "x", "y")));
        PeerAccess copied = PeerAccess.of(links);
        links.clear();
        assertTrue(copied.has("h", "x", "y"), "the links are copied");
    }

    @Test
    void twoArgumentTopologyGivesEveryPairPeerAccess() {
        Topology t = new Topology(ActorPlacement.IN_DRIVER, Map.of(1, new ActorPlacement("h", "w1", 0, 10)));
        assertEquals(PeerAccess.ALL, t.peerAccess());
        assertEquals(new Topology(ActorPlacement.IN_DRIVER, t.actors(), PeerAccess.ALL), t);
        assertThrows(NullPointerException.class, () -> new Topology(ActorPlacement.IN_DRIVER, Map.of(), null));
    }
}
