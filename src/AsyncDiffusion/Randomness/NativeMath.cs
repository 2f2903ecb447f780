using System.Runtime.InteropServices;

namespace AsyncDiffusion.Randomness;

/// <summary>
/// The C library's <c>log1p</c>, which torch's double-precision normal path calls. .NET has no
/// log1p of its own (<c>double.LogP1</c> is <c>Log(x + 1)</c>), and for "same seed, same noise"
/// the last bit must come from the same function. Falls back to <c>Log(1 + x)</c> where no C
/// library exports it.
/// </summary>
internal static class NativeMath
{
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate double UnaryFunction(double x);

    private static readonly UnaryFunction? NativeLog1P = Load("log1p");

    public static double Log1P(double x) => NativeLog1P is { } f ? f(x) : Math.Log(1 + x);

    private static UnaryFunction? Load(string name)
    {
        string[] candidates = OperatingSystem.IsWindows() ? ["ucrtbase.dll", "msvcrt.dll"]
            : OperatingSystem.IsMacOS() ? ["libSystem.dylib", "libm.dylib"]
            : ["libm.so.6", "libm.so", "libc.so"];
        foreach (var lib in candidates)
        {
            if (NativeLibrary.TryLoad(lib, out var handle) && NativeLibrary.TryGetExport(handle, name, out var address))
                return Marshal.GetDelegateForFunctionPointer<UnaryFunction>(address);
        }
        return null;
    }
}
