package dev.kiln.compiler;

import dev.kiln.compiler.Topology.ActorPlacement;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
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
    }
}
