package dev.kiln.examples;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(60)
class QuickStartTest {

    /** The README's quick start is QuickStart.main's body, line for line (indentation aside). */
    @Test
    void readmeQuickStartIsTheCompiledExample() throws IOException {
        List<String> readme = Files.readAllLines(Path.of("..", "README.md"));
        int heading = readme.indexOf("## Quick start");
        assertTrue(heading >= 0, "README.md has a '## Quick start' section");
        int open = readme.subList(heading, readme.size()).indexOf("```java") + heading;
        int close = readme.subList(open + 1, readme.size()).indexOf("```") + open + 1;
        assertTrue(open > heading && close > open, "the quick start is a ```java block");
        List<String> snippet = readme.subList(open + 1, close);

        List<String> source = Files.readAllLines(Path.of("src/main/java/dev/kiln/examples/QuickStart.java"));
        int begin = source.indexOf("        // README quick start: begin");
        int end = source.indexOf("        // README quick start: end");
        assertTrue(begin >= 0 && end > begin, "QuickStart.java marks the README's lines");
        List<String> compiled = source.subList(begin + 1, end);

        assertFalse(snippet.isEmpty(), "the README's quick start is not empty");
        assertEquals(strip(compiled), strip(snippet),
                "README.md's quick start and QuickStart.main differ: copy QuickStart.java's lines between the"
                        + " 'README quick start' markers into README.md");
    }

    @Test
    void quickStartRunsAndPrintsTheModelsOutput() throws Exception {
        PrintStream stdout = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            QuickStart.main(new String[0]);
        } finally {
            System.setOut(stdout);
        }
        String printed = captured.toString(StandardCharsets.UTF_8);
        float[] expected = new QuickStart.Model(0).forward(new QuickStart.Tokenizer().encode("hello kiln"), 0.5f);
        assertTrue(printed.contains(Arrays.toString(expected)), "the compiled graph's result, printed: " + printed);
        assertTrue(printed.contains(Arrays.toString(new QuickStart.Tokenizer().encode("hi"))),
                "the dynamic call's result, printed: " + printed);
    }

    /** Drops the common leading indentation and trailing spaces. */
    private static List<String> strip(List<String> lines) {
        int indent = lines.stream().filter(l -> !l.isBlank())
                .mapToInt(l -> l.length() - l.stripLeading().length()).min().orElse(0);
        return lines.stream().map(l -> l.isBlank() ? "" : l.substring(indent).stripTrailing()).toList();
    }
}
