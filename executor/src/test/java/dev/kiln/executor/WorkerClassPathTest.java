package dev.kiln.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The automatic class path of worker JVMs. */
class WorkerClassPathTest {

    private static Path codeSource(Class<?> c) throws Exception {
        return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI()).toAbsolutePath().normalize();
    }

    @Test
    void holdsKilnItsDependenciesAndTheContextLoadersLocalEntriesOnlyEachOnce(@TempDir Path dir) throws Exception {
        Path local = Files.createDirectory(dir.resolve("app-classes"));
        URL[] urls = {local.toUri().toURL(), URI.create("http://example.invalid/evil.jar").toURL(),
            dir.resolve("missing.jar").toUri().toURL(), local.toUri().toURL()};
        Thread t = Thread.currentThread();
        ClassLoader before = t.getContextClassLoader();
        try (URLClassLoader loader = new URLClassLoader(urls, before)) {
            t.setContextClassLoader(loader);
            List<Path> cp = WorkerClassPath.automatic(List.of());
            assertTrue(cp.contains(local), cp.toString());
            assertTrue(cp.contains(codeSource(WorkerMain.class)), cp.toString());
            assertTrue(cp.contains(codeSource(org.agrona.DirectBuffer.class)), cp.toString());
            assertTrue(cp.contains(codeSource(io.aeron.Aeron.class)), cp.toString());
            assertFalse(cp.stream().anyMatch(p -> p.toString().contains("evil") || p.toString().contains("missing")),
                    cp.toString());
            assertEquals(cp.size(), new HashSet<>(cp).size(), "each entry once: " + cp);
            assertTrue(cp.stream().allMatch(Files::exists), cp.toString());
        } finally {
            t.setContextClassLoader(before);
        }
    }

    @Test
    void keepsJavaClassPathFirstInItsOrder() {
        List<Path> cp = WorkerClassPath.automatic(List.of());
        List<Path> declared = java.util.Arrays.stream(System.getProperty("java.class.path").split(java.io.File.pathSeparator))
                .filter(e -> !e.isEmpty()).map(e -> Path.of(e).toAbsolutePath().normalize()).filter(Files::exists)
                .distinct().toList();
        assertEquals(declared, cp.subList(0, declared.size()));
    }
}
