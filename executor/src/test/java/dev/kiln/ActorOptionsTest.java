package dev.kiln;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ActorOptionsTest {

    @Test
    void defaultsLiveInTheDriverWithoutAGpu() {
        ActorOptions o = ActorOptions.defaults();
        assertFalse(o.inWorker());
        assertFalse(o.onJoinedWorker());
        assertFalse(o.hasGpu());
        assertEquals(ActorOptions.NO_GPU, o.gpu());
    }

    @Test
    void gpuAndNameCarryOverEveryPlacement() {
        ActorOptions o = ActorOptions.process("w1").gpu(2).name("model");
        assertTrue(o.inWorker());
        assertEquals("w1", o.processName());
        assertEquals(2, o.gpu());
        assertEquals("model", o.name());
        assertThrows(IllegalArgumentException.class, () -> ActorOptions.defaults().gpu(-1));
    }

    @Test
    void joinedWorkerPlacementByHostAndLabels() {
        ActorOptions o = ActorOptions.host("node-7").withLabel("zone", "b").withLabel("arch", "x86");
        assertTrue(o.onJoinedWorker());
        assertFalse(o.inWorker());
        assertEquals("node-7", o.host());
        assertEquals(List.of("arch", "zone"), List.copyOf(o.labels().keySet()), "labels are sorted by key");
        assertEquals(Map.of("zone", "b"), ActorOptions.label("zone", "b").labels());
        assertThrows(UnsupportedOperationException.class, () -> o.labels().put("x", "y"));
    }

    @Test
    void aChildJvmCannotAlsoBeAJoinedWorker() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ActorOptions.process("w").withLabel("zone", "b"));
        assertTrue(e.getMessage().contains("not both"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ActorOptions.host(" "));
        assertThrows(IllegalArgumentException.class, () -> ActorOptions.label("", "v"));
        assertThrows(IllegalArgumentException.class, () -> ActorOptions.process("driver"));
    }
}
