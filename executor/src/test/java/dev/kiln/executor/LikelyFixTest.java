package dev.kiln.executor;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The fix a failed worker start suggests, from the lines it printed. */
class LikelyFixTest {

    @Test
    void aMissingExportNamesTheFlag() {
        String fix = WorkerProcess.likelyFix(List.of("Exception in thread \"main\" java.lang.IllegalAccessError: class "
                + "org.agrona.UnsafeApi cannot access class jdk.internal.misc.Unsafe"), 3, "none");
        assertTrue(fix.contains(JvmFlags.ADD_EXPORTS), fix);
    }

    @Test
    void eachKnownCauseHasItsFixAndAnUnknownOneTheFallback() {
        assertTrue(WorkerProcess.likelyFix(List.of("Error: Could not find or load main class dev.kiln.executor.WorkerMain"),
                1, "none").contains("KilnOptions.workerClassPath"));
        assertTrue(WorkerProcess.likelyFix(List.of("Unrecognized VM option 'Foo'"), 1, "none")
                .contains("KilnOptions.workerJvmOptions"));
        assertTrue(WorkerProcess.likelyFix(List.of("java.lang.UnsupportedClassVersionError: x"), 1, "none")
                .contains("newer Java"));
        assertTrue(WorkerProcess.likelyFix(List.of("Error occurred during initialization of VM",
                "Could not reserve enough space for object heap"), 1, "none").contains("-Xmx"));
        assertEquals("none", WorkerProcess.likelyFix(List.of("hello"), 1, "none"));
    }
}
