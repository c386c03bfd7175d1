package dev.kiln.examples;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The docs stay navigable: docs/README.md lists every doc, and no relative link points at a missing file. */
class DocsTest {

    private static final Path ROOT = Path.of("..");
    private static final Pattern LINK = Pattern.compile("\\]\\(([^)#\\s]+)(#[^)]*)?\\)");

    @Test
    void theIndexListsEveryDoc() throws IOException {
        Path index = ROOT.resolve("docs/README.md");
        assertTrue(Files.isRegularFile(index), "docs/README.md, the index of the docs, exists");
        String text = Files.readString(index);
        List<String> unlisted = new ArrayList<>();
        for (Path doc : docs()) {
            String name = doc.getFileName().toString();
            if (!name.equals("README.md") && !text.contains("(" + name + ")")) {
                unlisted.add(name);
            }
        }
        assertEquals(List.of(), unlisted, "docs missing from docs/README.md: add a row for each");
    }

    @Test
    void relativeLinksPointAtFilesInTheRepository() throws IOException {
        List<Path> files = new ArrayList<>(docs());
        files.add(ROOT.resolve("README.md"));
        List<String> broken = new ArrayList<>();
        for (Path file : files) {
            Matcher m = LINK.matcher(Files.readString(file));
            while (m.find()) {
                String target = m.group(1);
                if (!target.contains("://") && !Files.exists(file.getParent().resolve(target))) {
                    broken.add(ROOT.relativize(file) + " -> " + target);
                }
            }
        }
        assertTrue(files.size() > 5, "found the docs: " + files);
        assertEquals(List.of(), broken, "links to files that are not in the repository");
    }

    private static List<Path> docs() throws IOException {
        try (Stream<Path> s = Files.list(ROOT.resolve("docs"))) {
            return s.filter(p -> p.toString().endsWith(".md")).sorted().toList();
        }
    }
}
