package dev.kiln;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Worker JVMs that start anywhere: under a launcher that loads the application through a {@code URLClassLoader}
 * (as {@code mvn exec:java} does), and, when one cannot start, an error with its own last lines and the likely fix.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class WorkerStartTest {

    /** The flags worker mode needs (the poms' kiln.jvmFlags). */
    private static final List<String> FLAGS = List.of("--enable-native-access=ALL-UNNAMED", "--add-exports",
            "java.base/jdk.internal.misc=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow");

    @Test
    void aDriverLoadedThroughAUrlClassLoaderStartsWorkersThatRunItsActors(@TempDir Path dir) throws Exception {
        Path launcherDir = dir.resolve("launcher");
        String classFile = ExecJavaLauncher.class.getName().replace('.', '/') + ".class";
        Files.createDirectories(launcherDir.resolve(classFile).getParent());
        try (InputStream in = ExecJavaLauncher.class.getClassLoader().getResourceAsStream(classFile)) {
            assertNotNull(in, classFile);
            Files.write(launcherDir.resolve(classFile), in.readAllBytes());
        }
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(FLAGS);
        command.addAll(List.of("-Xmx256m", "-cp", launcherDir.toString(), ExecJavaLauncher.class.getName(),
                ExecJavaEntry.class.getName(), System.getProperty("java.class.path")));
        Path log = dir.resolve("out.txt");
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        p.getOutputStream().close();
        if (!p.waitFor(150, TimeUnit.SECONDS)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            throw new AssertionError("the launched driver did not end within 150 s: " + Files.readString(log));
        }
        String out = Files.readString(log, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("result 42 in another JVM: true"), out);
    }

    /** @return the message of the failure to place an actor in a worker JVM started with these options */
    private static String startFailure(KilnOptions options) {
        try (Kiln kiln = Kiln.local(options.workerStartTimeout(Duration.ofSeconds(60)))) {
            return assertThrows(ActorCreationException.class,
                    () -> kiln.actor(ExecJavaEntry.Adder::new, ActorOptions.process())).getMessage();
        }
    }

    @Test
    void aWorkerJvmThatRefusesAnOptionFailsWithItsOwnErrorLineAndTheFix() {
        String m = startFailure(KilnOptions.defaults().workerJvmOptions(List.of("-XX:+NoSuchOption")));
        assertTrue(m.contains("Unrecognized VM option 'NoSuchOption'"), m);
        assertTrue(m.contains("Likely fix: ") && m.contains("KilnOptions.workerJvmOptions"), m);
    }

    @Test
    void aWorkerJvmWhoseClassPathLacksKilnSaysSoAndNamesTheOption(@TempDir Path empty) {
        String m = startFailure(KilnOptions.defaults().workerClassPath(List.of(empty)));
        assertTrue(m.contains("Could not find or load main class dev.kiln.executor.WorkerMain"), m);
        assertTrue(m.contains("Likely fix: ") && m.contains("KilnOptions.workerClassPath"), m);
    }
}
