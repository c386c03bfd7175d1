package dev.kiln.bench;

import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.CudaDriver;
import dev.kiln.cuda.CudaDriverLibrary;
import dev.kiln.cuda.CudaRuntime;
import dev.kiln.cuda.DeviceAttribute;
import dev.kiln.cuda.Nvrtc;
import dev.kiln.cuda.NvrtcLibrary;
import dev.kiln.nccl.Nccl;
import dev.kiln.nccl.NcclLibrary;

import java.util.Locale;

/**
 * Prints what Kiln finds of CUDA on this machine, for {@code gpu/verify}'s {@code environment.txt}: the JVM and its
 * cores, then for each native library (libcudart, libcuda, libnvrtc, libnccl) where it was loaded from or why not,
 * and whether the API above it is usable (CUDA runtime, driver API, NVRTC, NCCL), with devices and versions. One
 * line per item, {@code name: yes|no ...}, which {@link GpuReport} reads back. Creates no CUDA context.
 */
public final class GpuEnvironment {

    private GpuEnvironment() {
    }

    /**
     * @param args none
     */
    public static void main(String[] args) {
        Runtime rt = Runtime.getRuntime();
        System.out.println("java: " + System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version")
                + " (" + System.getProperty("java.vendor") + ") in " + System.getProperty("java.home"));
        System.out.println("cpus: " + rt.availableProcessors() + " CPUs (Runtime.availableProcessors)");
        System.out.println("max heap: " + rt.maxMemory() / (1 << 20) + " MiB");
        System.out.println("kiln.bench.gpu: " + System.getProperty(GpuBench.PROPERTY, "cuda"));
        System.out.println("kiln.nccl.path: " + System.getProperty(NcclLibrary.PATH_PROPERTY, "(not set)"));
        library("libcudart", CudaRuntime.isLoaded(), CudaRuntime.source(), CudaRuntime.loadFailure());
        library("libcuda", CudaDriverLibrary.isLoaded(), CudaDriverLibrary.source(), CudaDriverLibrary.loadFailure());
        library("libnvrtc", NvrtcLibrary.isLoaded(), NvrtcLibrary.source(), NvrtcLibrary.loadFailure());
        library("libnccl", NcclLibrary.isLoaded(), NcclLibrary.source(), NcclLibrary.loadFailure());
        if (Cuda.isAvailable()) {
            System.out.println("CUDA: yes, " + Cuda.deviceCount() + " device(s), driver " + version(Cuda.driverVersion())
                    + ", runtime " + version(Cuda.runtimeVersion()));
            for (int d = 0; d < Cuda.deviceCount(); d++) {
                device(d);
            }
        } else {
            System.out.println("CUDA: no, " + Cuda.unavailableReason());
        }
        System.out.println("CUDA driver API: " + (CudaDriver.isAvailable() ? "yes" : "no, " + CudaDriver.unavailableReason()));
        System.out.println("NVRTC: " + (Nvrtc.isAvailable() ? "yes, version " + version(Nvrtc.version())
                : "no, " + Nvrtc.unavailableReason()));
        if (Nccl.isAvailable()) {
            int v = Nccl.version();
            System.out.println("NCCL: yes, version " + v / 10000 + "." + v / 100 % 100 + "." + v % 100);
        } else {
            System.out.println("NCCL: no, " + Nccl.unavailableReason());
        }
    }

    private static void library(String name, boolean loaded, String source, String failure) {
        System.out.println(name + ": " + (loaded ? "yes, from " + source : "no, " + failure));
    }

    private static void device(int d) {
        StringBuilder line = new StringBuilder("  gpu" + d + ": ");
        try {
            int major = Cuda.deviceAttribute(DeviceAttribute.COMPUTE_CAPABILITY_MAJOR, d);
            int minor = Cuda.deviceAttribute(DeviceAttribute.COMPUTE_CAPABILITY_MINOR, d);
            line.append("compute capability ").append(major).append('.').append(minor).append(", ")
                    .append(Cuda.deviceAttribute(DeviceAttribute.MULTI_PROCESSOR_COUNT, d)).append(" SMs");
            if (CudaDriver.isAvailable()) {
                line.append(", ").append(CudaDriver.deviceUuid(d)).append(String.format(Locale.ROOT, ", %.1f GiB",
                        CudaDriver.totalMemory(d) / (double) (1L << 30)));
            }
        } catch (RuntimeException e) {
            line.append("cannot be read: ").append(e.getMessage());
        }
        System.out.println(line);
    }

    /** @return {@code 1000 * major + 10 * minor} as {@code major.minor} */
    private static String version(int v) {
        return v / 1000 + "." + v % 1000 / 10;
    }
}
