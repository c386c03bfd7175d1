package dev.kiln.executor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Joins in progress are bounded per source and in all, and a source that failed waits, longer each time. */
class AdmissionTest {

    private static final long MS = 1_000_000;

    @Test
    void oneSourceCannotTakeEverySlot() {
        Admission a = new Admission(4, 10, 100 * MS, 1_000 * MS, 100);
        for (int i = 0; i < 4; i++) {
            assertNull(a.start("10.0.0.2", 0));
        }
        assertEquals("4 joins from it are in progress already", a.start("10.0.0.2", 0));
        for (int i = 0; i < 4; i++) {
            assertNull(a.start("10.0.0." + (10 + i), 0), "another source still joins");
        }
        assertNull(a.start("10.0.0.20", 0));
        assertNull(a.start("10.0.0.20", 0));
        assertEquals("10 joins are in progress already", a.start("10.0.0.21", 0));
        a.finished("10.0.0.20", true, 0);
        assertNull(a.start("10.0.0.21", 0));
    }

    @Test
    void aFailedJoinDelaysItsSourceLongerEachTimeUntilOneSucceeds() {
        Admission a = new Admission(4, 10, 100 * MS, 350 * MS, 100);
        assertNull(a.start("s", 0));
        a.finished("s", false, 0);
        assertTrue(a.start("s", 50 * MS).startsWith("its last join failed: it may try again in 50 ms"));
        assertNull(a.start("s", 100 * MS));
        a.finished("s", false, 100 * MS);
        assertTrue(a.start("s", 250 * MS).startsWith("its last join failed"), "200 ms after a second failure");
        assertNull(a.start("s", 300 * MS));
        a.finished("s", false, 300 * MS);
        assertTrue(a.start("s", 600 * MS).startsWith("its last join failed"), "capped at 350 ms");
        assertNull(a.start("s", 650 * MS));
        a.finished("s", true, 650 * MS);
        assertNull(a.start("s", 650 * MS), "a success forgets the failures");
        assertEquals(1, a.pending());
    }

    @Test
    void theTableOfSourcesIsBounded() {
        Admission a = new Admission(1, 1000, 100 * MS, 100 * MS, 3);
        for (int i = 0; i < 3; i++) {
            assertNull(a.start("s" + i, 0));
            a.finished("s" + i, false, 0);
        }
        assertEquals("3 sources have joins in progress or are waiting after failed joins", a.start("s9", 0));
        assertNull(a.start("s9", 100 * MS), "waits that ended make room");
    }

    @Test
    void anIpv6SourceCountsByItsSlash64() {
        assertEquals(ControlPlane.admissionKey("2001:db8:1:2::1"), ControlPlane.admissionKey("2001:db8:1:2:ffff::9"));
        assertEquals("20010db800010002::/64", ControlPlane.admissionKey("2001:db8:1:2::1"));
        assertNotEquals(ControlPlane.admissionKey("2001:db8:1:2::1"), ControlPlane.admissionKey("2001:db8:1:3::1"));
        assertEquals("127.0.0.1", ControlPlane.admissionKey("127.0.0.1"), "IPv4 by the address itself");
    }
}
