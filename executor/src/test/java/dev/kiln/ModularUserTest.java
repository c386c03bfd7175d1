package dev.kiln;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.lang.module.ModuleDescriptor;
import java.lang.module.ModuleFinder;
import java.lang.module.ModuleReference;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Kiln as a modular user meets it: a small application module is compiled with {@code javax.tools} against Kiln's
 * module descriptors and run with {@code java --module-path} (no class path, no flags), and a module that reaches
 * into Kiln's internals does not compile. The tests themselves run on the class path (see the root pom).
 */
@Timeout(180)
class ModularUserTest {

    /** What the user's module must open to Kiln, as docs/architecture.md says. */
    private static final String MODULE_INFO = """
            module kiln.demo {
                requires dev.kiln.executor;
                // Kiln reads a method reference's SerializedLambda (bind) and an actor factory's: open the package
                // that declares them.
                opens demo.app to dev.kiln.graphcompiler, dev.kiln.executor;
            }
            """;

    private static final String MAIN = """
            package demo.app;

            import dev.kiln.CompiledGraph;
            import dev.kiln.Kiln;
            import dev.kiln.graph.ActorRef;
            import dev.kiln.graph.Graph;
            import dev.kiln.graph.InputNode;

            public final class Main {
                public static final class Scale {
                    private final int by;
                    public Scale(int by) { this.by = by; }
                    public int[] apply(int[] x) {
                        int[] out = x.clone();
                        for (int i = 0; i < out.length; i++) { out[i] *= by; }
                        return out;
                    }
                    public String show(int[] x) { return java.util.Arrays.toString(x); }
                }

                public static void main(String[] args) throws Exception {
                    try (Kiln kiln = Kiln.local()) {
                        ActorRef<Scale> a = kiln.actor(() -> new Scale(3));
                        ActorRef<Scale> b = kiln.actor(() -> new Scale(1));
                        InputNode<int[]> in = Graph.input();
                        try (CompiledGraph<int[], String> g = kiln.compile(in, b.bind(Scale::show, a.bind(Scale::apply, in)))) {
                            String r = null;
                            for (int i = 0; i < 100; i++) {
                                r = g.execute(new int[] {1, 2, i}).get();
                            }
                            System.out.println(Main.class.getModule().getName() + " " + Kiln.class.getModule().getName()
                                    + " " + r);
                        }
                    }
                }
            }
            """;

    @Test
    void aGraphRunsFromANamedModuleOnTheModulePath(@TempDir Path dir) throws Exception {
        String printed = runModule(dir, MODULE_INFO);
        assertEquals("0\nkiln.demo dev.kiln.executor [3, 6, 297]\n", printed, "a named module and a named Kiln, no warning");
    }

    /** Compiles the demo module and runs it on the module path; returns its exit status and what it printed. */
    private static String runModule(Path dir, String moduleInfo) throws Exception {
        String modulePath = kilnModulePath();
        Path out = dir.resolve("out");
        String errors = compile(dir, modulePath, out, moduleInfo, MAIN);
        assertEquals("", errors, "the user's module compiles against Kiln's module descriptors");

        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Path log = dir.resolve("run.log");
        Process p = new ProcessBuilder(java.toString(), "-Xmx256m", "--module-path", out + File.pathSeparator + modulePath,
                "-m", "kiln.demo/demo.app.Main").redirectErrorStream(true).redirectOutput(log.toFile()).start();
        p.getOutputStream().close();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("the modular application did not end within 120 s:\n" + Files.readString(log));
        }
        return p.exitValue() + "\n" + Files.readString(log);
    }

    @Test
    void aModuleThatDoesNotOpenItsPackageIsToldWhatToAdd(@TempDir Path dir) throws Exception {
        String closed = MODULE_INFO.replaceAll("(?m)^.*opens .*$", "");
        String printed = runModule(dir, closed);
        assertTrue(printed.contains("module kiln.demo does not open package demo.app to Kiln; add `opens demo.app to"
                + " dev.kiln.graphcompiler, dev.kiln.executor;` to its module-info.java"), printed);
    }

    @Test
    void theExecutorsInternalsAreNotVisibleToAModule(@TempDir Path dir) throws Exception {
        String reaching = """
                package demo.app;

                public final class Main {
                    public static void main(String[] args) {
                        System.out.println(dev.kiln.executor.GraphLoop.class);
                        System.out.println(dev.kiln.executor.wire.PlanCodec.class);
                        System.out.println(dev.kiln.graph.internal.GraphInternals.class);
                    }
                }
                """;
        String errors = compile(dir, kilnModulePath(), dir.resolve("out"), MODULE_INFO, reaching);
        assertNotEquals("", errors);
        for (String pkg : List.of("dev.kiln.executor", "dev.kiln.executor.wire", "dev.kiln.graph.internal")) {
            assertTrue(errors.contains("package " + pkg + " is not visible"), errors);
        }
    }

    /** Compiles {@code module-info.java} and {@code demo/app/Main.java} into {@code out}; returns the compiler's errors. */
    private static String compile(Path dir, String modulePath, Path out, String moduleInfo, String main) throws IOException {
        Path src = dir.resolve("src");
        Files.createDirectories(src.resolve("demo/app"));
        Files.writeString(src.resolve("module-info.java"), moduleInfo);
        Files.writeString(src.resolve("demo/app/Main.java"), main);
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int rc = javac.run(null, null, err, "--release", "25", "-d", out.toString(), "--module-path", modulePath,
                src.resolve("module-info.java").toString(), src.resolve("demo/app/Main.java").toString());
        String text = err.toString(StandardCharsets.UTF_8);
        return rc == 0 ? text : text.isEmpty() ? "javac exited with " + rc : text;
    }

    /**
     * {@return the module path a user's application would have: Kiln's library modules from this test's class path
     *          and the modules they require, nothing else (no test libraries)}
     */
    private static String kilnModulePath() {
        Map<String, Path> byName = new HashMap<>();
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            Path p = Path.of(entry);
            if (entry.isEmpty() || !Files.exists(p)) {
                continue;
            }
            try {
                for (ModuleReference ref : ModuleFinder.of(p).findAll()) {
                    byName.putIfAbsent(ref.descriptor().name(), p);
                }
            } catch (RuntimeException notAModule) { // a test-classes folder without a descriptor, a jar that cannot be one
                // not on a user's module path
            }
        }
        Set<String> needed = new LinkedHashSet<>();
        Deque<String> work = new ArrayDeque<>(List.of("dev.kiln.executor"));
        while (!work.isEmpty()) {
            String name = work.pop();
            Path where = byName.get(name);
            if (where == null || !needed.add(name)) {
                continue;
            }
            ModuleDescriptor d = ModuleFinder.of(where).find(name).orElseThrow().descriptor();
            for (ModuleDescriptor.Requires r : d.requires()) {
                if (!r.modifiers().contains(ModuleDescriptor.Requires.Modifier.STATIC)) {
                    work.push(r.name());
                }
            }
        }
        assertTrue(needed.containsAll(List.of("dev.kiln.executor", "dev.kiln.transports", "dev.kiln.graphcompiler",
                "dev.kiln.nativebindings")), "Kiln's modules on this test's class path: " + needed);
        List<String> path = new ArrayList<>();
        for (String name : needed) {
            path.add(byName.get(name).toString());
        }
        return String.join(File.pathSeparator, path);
    }
}
