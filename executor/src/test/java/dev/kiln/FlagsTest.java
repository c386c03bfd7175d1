package dev.kiln;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * JVM flags only where needed: child JVMs started with this JVM's {@code java} and class path but none of Kiln's flags.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class FlagsTest {

    /** What a child JVM printed. */
    record Run(int exit, String out, String err) {
    }

    static Run runWithoutFlags(String main, String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx256m", "-cp", System.getProperty("java.class.path"), main));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).start();
        p.getOutputStream().close();
        var out = p.getInputStream().readAllBytes();
        var err = p.getErrorStream().readAllBytes(); // small: read after stdout without risk of a full pipe
        if (!p.waitFor(90, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError(main + " did not end within 90 s");
        }
        return new Run(p.exitValue(), new String(out, StandardCharsets.UTF_8), new String(err, StandardCharsets.UTF_8));
    }

    @Test
    void anInProcessGraphRunsWithoutFlagsAndPrintsNoWarning() throws Exception {
        Run r = runWithoutFlags(InProcessRun.class.getName());
        assertEquals(0, r.exit(), r.err());
        assertEquals("ok [2, 4, 1998]\n", r.out());
        assertEquals("", r.err(), "nothing on stderr (Fory's sun.misc.Unsafe warnings came from loading it)");
    }

    @Test
    void workerModeWithoutTheFlagSaysWhichFlagAndHowToFixIt() throws Exception {
        Run r = runWithoutFlags(WorkerWithoutFlags.class.getName());
        assertTrue(r.out().startsWith("refused: "), r.out() + r.err());
        assertTrue(r.out().contains("--add-exports java.base/jdk.internal.misc=ALL-UNNAMED"), r.out());
        assertTrue(!r.err().contains("IllegalAccessError"), r.err());
    }
}
