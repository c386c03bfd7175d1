package dev.kiln;

import dev.kiln.cuda.Cuda;
import dev.kiln.graph.ActorRef;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** {@code ActorOptions.gpu(n)}: the actor's thread uses that device; a host without it refuses the actor. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class GpuPlacementTest {

    @TempDir
    Path tmp;

    /** Reports the CUDA device its thread uses. */
    public static final class DeviceProbe {
        public int device() {
            return Cuda.device();
        }
    }

    @Test
    void withoutAGpuAnActorThatAsksForOneIsRefusedWithTheReason() {
        assumeFalse(Cuda.isAvailable(), "this machine has a GPU: see actorsOnAGpuRunOnThatDevice");
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().runDirectory(tmp.resolve("run")))) {
            ActorCreationException e = assertThrows(ActorCreationException.class,
                    () -> kiln.actor(DeviceProbe::new, ActorOptions.defaults().gpu(0).name("probe")));
            assertTrue(e.getMessage().contains("asks for GPU 0") && e.getMessage().contains("has 0 GPUs")
                    && e.getMessage().contains(Cuda.unavailableReason()), e.getMessage());
            ActorCreationException child = assertThrows(ActorCreationException.class,
                    () -> kiln.actor(DeviceProbe::new, ActorOptions.process("gpu-child").gpu(0)));
            assertTrue(child.getMessage().contains("asks for GPU 0"), child.getMessage());
            // the refused name is free again, and the runtime goes on
            ActorRef<DeviceProbe> p = kiln.actor(DeviceProbe::new, ActorOptions.defaults().name("probe"));
            assertEquals("probe", p.name());
            assertTrue(kiln.hosts().stream().anyMatch(h -> h.name().equals("gpu-child") && h.actorCount() == 0),
                    "the child JVM started, hosts nothing, and stays usable: " + kiln.hosts());
        }
    }

    @Test
    @Tag("gpu")
    void actorsOnAGpuRunOnThatDevice() throws Exception {
        assumeTrue(Cuda.isAvailable(), "no GPU: " + (Cuda.isAvailable() ? "" : Cuda.unavailableReason()));
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().runDirectory(tmp.resolve("run")))) {
            int last = Cuda.deviceCount() - 1;
            ActorRef<DeviceProbe> local = kiln.actor(DeviceProbe::new, ActorOptions.defaults().gpu(last));
            assertEquals(last, kiln.call(local, DeviceProbe::device).get(30, TimeUnit.SECONDS));
            ActorRef<DeviceProbe> child = kiln.actor(DeviceProbe::new, ActorOptions.process("gpu-child").gpu(last));
            assertEquals(last, kiln.call(child, DeviceProbe::device).get(60, TimeUnit.SECONDS));
            assertEquals(Cuda.deviceCount(), kiln.hosts().getFirst().resources().gpus());
        }
    }
}
