from converge import package

package(["sysstat", "chrony"])
package("telnet", action="purge")
